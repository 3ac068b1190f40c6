"""predictionVerificationCheck: the model's predictions against a column of expected ones.

The expected predictions come from a second dataset (`datasetId` in the API, a CSV locally),
one row per row of the test dataset, in the same order, in the column `predictionsColumn`.
A row matches when |predicted - expected| <= `comparisonPrecision`; the check passes when at
least `matchingRate` of the compared rows match. Regression and anomaly models compare their
number; classifiers compare the predicted label (the most probable class) when every expected
value is one of the class labels, and otherwise the positive class's probability (binary).
Rows whose expected value is empty are not compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmkit.checks.context import Context
from cmkit.checks.predictions import Target, judge
from cmkit.checks.results import ABORTED, PREDICTION_VERIFICATION, SKIPPED, CheckResult, conclude
from cmkit.target import LabelKind

MAX_LISTED = 5


@dataclass(frozen=True)
class Mismatch:
    """A compared row whose prediction is not the expected one (numbers: beyond the precision)."""

    row: int
    predicted: Any  # a number, or a label when labels are compared
    expected: Any

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "predicted": self.predicted, "expected": self.expected}


def _as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _comparable(values: np.ndarray, expected: list[str | None], target: Target) -> tuple[list[Any], list[Any], str]:
    """(predicted, expected) per compared row, and what is compared: a number or a label."""
    present = [v for v in expected if v is not None]
    if target.is_classification and present and all(v in target.labels for v in present):
        predicted: list[Any] = [target.labels[int(i)] for i in np.argmax(values, axis=1)]
        return predicted, list(expected), "label"
    if target.type.label_kind is LabelKind.LIST:  # a probability matrix compares with labels only
        raise ValueError(f"expected values must be class labels ({', '.join(target.labels)})")
    numbers = values[:, 0] if target.is_classification else values
    parsed = [None if v is None else _as_float(v) for v in expected]
    bad = [v for v, p in zip(expected, parsed, strict=True) if v is not None and p is None]
    if bad:
        raise ValueError(f"expected values must be numbers, got {bad[0]!r}")
    what = f"probability of '{target.labels[0]}'" if target.is_classification else "prediction"
    return [float(n) for n in numbers], parsed, what


def _matches(predicted: Any, expected: Any, precision: float) -> bool:
    if isinstance(expected, str):
        return bool(predicted == expected)
    return abs(float(predicted) - float(expected)) <= precision


def prediction_verification(ctx: Context) -> CheckResult:
    dataset, expected = ctx.dataset, ctx.options.expected
    level = ctx.level(PREDICTION_VERIFICATION)
    if expected is None:
        return CheckResult(SKIPPED, "no verification dataset: pass --verification-dataset and --predictions-column")
    assert dataset is not None
    parameters = ctx.options.parameters.verification
    if len(expected.values) != dataset.rows:
        problem = (
            f"the verification dataset has {len(expected.values)} rows, the test dataset {dataset.rows}: "
            "they must match row by row"
        )
        return conclude(level, problem, "")
    batch = ctx.batch
    if batch is None:
        answer = ctx.client.predict(dataset.payload())
        batch = ctx.batch = judge(answer.status, answer.text, dataset.rows, ctx.target)
    if batch.values is None:
        return CheckResult(ABORTED, f"not run: the whole-dataset predictions are invalid ({batch.summary()})")
    try:
        predicted, wanted, what = _comparable(batch.values, expected.values, ctx.target)
    except ValueError as exc:
        return conclude(level, f"column '{expected.column}': {exc}", "")
    compared = [(row, p, e) for row, (p, e) in enumerate(zip(predicted, wanted, strict=True)) if e is not None]
    mismatches = [Mismatch(row, p, e) for row, p, e in compared if not _matches(p, e, parameters.comparisonPrecision)]
    rate = (len(compared) - len(mismatches)) / len(compared) if compared else 0.0
    details = {
        "compared": what,
        "rowsCompared": len(compared),
        "rowsWithoutExpected": len(wanted) - len(compared),
        "rowsMatching": len(compared) - len(mismatches),
        "matchingRate": round(rate, 6),
        "requiredMatchingRate": parameters.matchingRate,
        "comparisonPrecision": parameters.comparisonPrecision,
        "mismatches": [m.to_dict() for m in mismatches[:100]],
    }
    summary = (
        f"{len(compared) - len(mismatches)} of {len(compared)} rows match '{expected.column}' "
        f"({rate:.1%}; {parameters.matchingRate:.1%} required, precision {parameters.comparisonPrecision:g})"
    )
    if not compared:
        return conclude(level, f"no row of '{expected.column}' holds an expected value", "", details)
    if rate >= parameters.matchingRate:
        return conclude(level, None, summary, details)
    listed = "; ".join(
        f"row {m.row}: predicted {_short(m.predicted)}, expected {_short(m.expected)}" for m in mismatches[:MAX_LISTED]
    )
    return conclude(level, f"{summary}: {listed}", "", details)


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
