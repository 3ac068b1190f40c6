"""Is a `predict_no_state` answer valid for the model's target type? The rules of errorCheck.

A valid answer: HTTP 200, strict JSON (NaN and Infinity tokens are not JSON), a `predictions`
list with one entry per row, and each entry valid for the target type: regression and anomaly a
finite number; binary and multiclass an object mapping exactly the class labels (compared as
strings) to probabilities in [0, 1] that sum to 1 within 1e-6.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from cmkit.checks.client import AUTH_HINTS
from cmkit_runtime.target import Target

__all__ = ["Target", "Verdict", "judge", "strict_json"]  # Target is the runtime's: one description of a target

PROBABILITY_TOLERANCE = 1e-6
MAX_REPORTED_ROWS = 5


@dataclass(frozen=True)
class RowProblem:
    row: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"row": self.row, "reason": self.reason}


@dataclass
class Verdict:
    """The outcome for one request: a problem for the whole answer, or per-row problems, or values."""

    error: str | None = None
    rows: list[RowProblem] = field(default_factory=list)
    values: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rows

    def summary(self) -> str:
        if self.error:
            return self.error
        shown = "; ".join(f"row {p.row}: {p.reason}" for p in self.rows[:MAX_REPORTED_ROWS])
        more = f" (and {len(self.rows) - MAX_REPORTED_ROWS} more rows)" if len(self.rows) > MAX_REPORTED_ROWS else ""
        return f"{len(self.rows)} invalid predictions: {shown}{more}"


def _reject_constant(token: str) -> Any:
    raise ValueError(f"'{token}' is not valid JSON")


def strict_json(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _answer(text: str) -> Any:
    """An answer's JSON: orjson (several times faster on 100,000 predictions), else strict_json,
    for its message or for what orjson refuses and JSON allows (1e999, which is then infinite)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return strict_json(text)


def _error_message(status: int, text: str) -> str:
    detail = text.strip()
    try:
        body = json.loads(text)
        if isinstance(body, dict) and "message" in body:
            detail = str(body["message"])
    except ValueError:
        pass
    detail = detail.replace("\n", " ")
    message = f"HTTP {status}: {detail[:300]}" if detail else f"HTTP {status}"
    return message + AUTH_HINTS.get(status, "")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(value: Any) -> str | None:
    if not _is_number(value):
        return f"expected a number, got {json.dumps(value)[:60]}"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer of hundreds of digits: JSON allows it, a float cannot hold it
        return f"number beyond a float's range ({str(value)[:20]}...)"
    if not finite:
        return f"non-finite value {value}"
    return None


def _check_probabilities(value: Any, labels: tuple[str, ...]) -> str | None:
    if not isinstance(value, dict):
        return f"expected an object of class probabilities, got {json.dumps(value)[:60]}"
    keys = {str(k) for k in value}
    if keys != set(labels):
        missing, extra = set(labels) - keys, keys - set(labels)
        parts = [f"missing {sorted(missing)}" if missing else "", f"unexpected {sorted(extra)}" if extra else ""]
        return "labels do not match the model's classes: " + ", ".join(p for p in parts if p)
    total = 0.0
    for label, probability in value.items():
        if not _is_number(probability) or not math.isfinite(probability):
            return f"probability of '{label}' is not a finite number: {json.dumps(probability)[:40]}"
        if not 0.0 <= probability <= 1.0:
            return f"probability of '{label}' is outside [0, 1]: {probability}"
        total += probability
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        return f"probabilities sum to {total:.9g}, not 1"
    return None


def _check_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string, got {json.dumps(value)[:60]}"
    return None


# A point as WKT writes it, `POINT (x y)` (a Z or M coordinate allowed), and as DRUM's own geopoint
# fixture writes it, `POINT(x, y)`: a word, then two or three finite numbers in parentheses.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT = re.compile(
    rf"\s*POINT\s*(?:Z|M|ZM)?\s*\(\s*{_NUMBER}(?:\s*,\s*|\s+){_NUMBER}(?:(?:\s*,\s*|\s+){_NUMBER})?\s*\)\s*",
    re.IGNORECASE,
)


def _check_point(value: Any) -> str | None:
    problem = _check_text(value)
    if problem:
        return problem
    if not _POINT.fullmatch(value):
        return f"expected a point such as 'POINT (2.35 48.85)', got {json.dumps(value)[:60]}"
    return None


def _check_row(value: Any, target: Target) -> str | None:
    if target.is_classification:
        return _check_probabilities(value, target.labels)
    if target.type.point_predictions:
        return _check_point(value)
    if target.type.text_predictions:
        return _check_text(value)
    return _check_number(value)


def _values(predictions: list[Any], target: Target) -> np.ndarray:
    if target.type.text_predictions:
        return np.array(predictions, dtype=object)
    if target.is_classification:
        by_label = [{str(k): float(v) for k, v in row.items()} for row in predictions]
        return np.array([[row[label] for label in target.labels] for row in by_label], dtype=float)
    return np.array(predictions, dtype=float)


def _numbers(predictions: list[Any], target: Target) -> np.ndarray | None:
    """A numeric target's predictions as floats in one step, when they are all numbers."""
    if not target.type.numeric_predictions:
        return None
    if not set(map(type, predictions)) <= {int, float}:  # bool is a type of its own: refused row by row
        return None
    try:
        return np.array(predictions, dtype=float)
    except OverflowError:  # an integer beyond float: row by row, as before
        return None


def _judge_numbers(predictions: list[Any], numbers: np.ndarray) -> Verdict:
    infinite = np.flatnonzero(~np.isfinite(numbers))
    if len(infinite):
        return Verdict(rows=[RowProblem(int(i), _check_number(predictions[i]) or "") for i in infinite])
    return Verdict(values=numbers)


def judge(status: int, text: str, rows: int, target: Target) -> Verdict:
    """Apply errorCheck's rules to one HTTP answer for a request of `rows` rows."""
    if status != 200:
        return Verdict(error=_error_message(status, text))
    try:
        body = _answer(text)
    except ValueError as exc:
        return Verdict(error=f"the response is not valid JSON ({exc})")
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        return Verdict(error="the response has no 'predictions' list")
    predictions = body["predictions"]
    if len(predictions) != rows:
        return Verdict(error=f"{len(predictions)} predictions for {rows} rows")
    numbers = _numbers(predictions, target)
    if numbers is not None:
        return _judge_numbers(predictions, numbers)
    problems = []
    for index, value in enumerate(predictions):
        reason = _check_row(value, target)
        if reason:
            problems.append(RowProblem(index, reason))
    if problems:
        return Verdict(rows=problems)
    return Verdict(values=_values(predictions, target))
