"""Permutation feature impact of a running model server, as DataRobot measures it.

For a sample of the dataset's rows the model predicts once as is (the baseline), then once per
feature with that feature's values shuffled among the rows. A feature's impact is how much worse
the model's error gets when its values are shuffled: RMSE for regression, log loss for binary
and multiclass classifiers, computed against the dataset's target column. `impactNormalized`
divides by the largest impact, so the top feature has 1.

Every request goes through the model's own `POST $URL_PREFIX/predict_no_state/`, so what is
measured is the served model, whatever its framework. The same code serves
`cmkit test-local --feature-impact` and the emulator's featureImpact routes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cmkit.checks.client import ModelClient
from cmkit.checks.predictions import Target, judge
from cmkit.checks.protocols import encode_payload
from cmkit.errors import CmkitError, InputError
from cmkit.events import ITEMS, Events

if TYPE_CHECKING:
    from cmkit.checks.dataset import Dataset

DEFAULT_ROWS = 2500  # DataRobot's default sample for permutation impact
MIN_ROWS, MAX_ROWS = 10, 100_000  # the API's bounds on rowCount
MAX_FEATURES = 1000  # "the most important 1000 features are returned"
LOG_LOSS_EPSILON = 1e-15


class FeatureImpactFailed(CmkitError):
    """The model could not predict on the (permuted) data, or the run was cancelled."""


@dataclass(frozen=True)
class FeatureImpactOptions:
    row_count: int | None = None  # None: DataRobot's default logic (up to DEFAULT_ROWS rows)
    seed: int = 0
    parallelism: int = 4
    request_timeout: float = 600.0
    headers: Mapping[str, str] = field(default_factory=dict)  # --header, for a server behind its own auth


@dataclass(frozen=True)
class FeatureImpactItem:
    feature_name: str
    impact_unnormalized: float
    impact_normalized: float

    def to_api(self) -> dict[str, Any]:
        return {
            "featureName": self.feature_name,
            "impactNormalized": self.impact_normalized,
            "impactUnnormalized": self.impact_unnormalized,
            "redundantWith": None,  # redundancy detection is not run (ranRedundancyDetection false)
        }


@dataclass
class FeatureImpactResult:
    metric: str
    baseline: float
    rows: int  # rows actually used
    row_count: int | None  # as requested; None for the default logic (the API then says null)
    impacts: list[FeatureImpactItem] = field(default_factory=list)
    seconds: float = 0.0

    def shown(self) -> list[FeatureImpactItem]:
        """The features the API returns: the most important MAX_FEATURES."""
        return self.impacts[:MAX_FEATURES]

    def to_api(self) -> dict[str, Any]:
        """The API's FeatureImpactResponse."""
        items = [item.to_api() for item in self.shown()]
        return {
            "count": len(items),
            "featureImpacts": items,
            "next": None,
            "previous": None,
            "ranRedundancyDetection": False,
            "rowCount": self.row_count,
            "shapBased": False,
        }

    def to_dict(self) -> dict[str, Any]:
        """The API's document plus what a local run can add: metric, baseline, rows, time."""
        return {
            **self.to_api(),
            "metric": self.metric,
            "baselineScore": self.baseline,
            "rowsUsed": self.rows,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FeatureImpactOutcome:
    """`test-local --feature-impact`: whether the ranking was computed (`status`: succeeded,
    failed or skipped, with why) and the ranking when it was."""

    status: str
    message: str = ""
    result: FeatureImpactResult | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, **(self.result.to_dict() if self.result else {})}


# -- scoring -------------------------------------------------------------------------------------


def _label_text(value: Any) -> str:
    """A target value as a class label: 1.0 read from a CSV is the label "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _truth(dataset: Dataset, target: Target, rows: np.ndarray) -> np.ndarray:
    assert dataset.target is not None
    values = dataset.target.to_numpy()[rows]
    if not target.is_classification:
        try:
            numbers: np.ndarray = values.astype(float)
            return numbers
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"the target column '{dataset.target_name}' is not numeric", file=dataset.path, line=1
            ) from exc
    index = {label: position for position, label in enumerate(target.labels)}
    unknown = sorted({_label_text(v) for v in values} - set(index))
    if unknown:
        raise InputError(
            f"target values {', '.join(unknown[:5])} are not class labels of the model ({', '.join(target.labels)})",
            file=dataset.path,
            hint="fix the labels (--class-labels, --positive/negative-class-label) or the dataset",
        )
    return np.array([index[_label_text(v)] for v in values])


def score(predictions: np.ndarray, truth: np.ndarray, target: Target) -> float:
    """RMSE (regression) or log loss (classifiers: one probability column per label)."""
    if not target.is_classification:
        return float(math.sqrt(np.mean((predictions - truth) ** 2)))
    chosen = predictions[np.arange(len(truth)), truth]
    return float(-np.mean(np.log(np.clip(chosen, LOG_LOSS_EPSILON, 1.0))))


# -- the computation -----------------------------------------------------------------------------


def _sample(dataset: Dataset, row_count: int | None, generator: np.random.Generator) -> np.ndarray:
    """Row indices to use: rows with a target value, at most `row_count` (or the default)."""
    assert dataset.target is not None
    labelled = np.flatnonzero(dataset.target.notna().to_numpy())
    if len(labelled) < MIN_ROWS:
        raise InputError(
            f"feature impact needs at least {MIN_ROWS} rows with a target value; the dataset has {len(labelled)}",
            file=dataset.path,
        )
    if row_count is not None and not MIN_ROWS <= row_count <= MAX_ROWS:
        raise InputError(f"rowCount must be from {MIN_ROWS} to {MAX_ROWS}, not {row_count}")
    if row_count is not None and row_count > len(labelled):
        raise InputError(
            f"rowCount {row_count} exceeds the {len(labelled)} rows of the dataset that have a target value",
            file=dataset.path,
        )
    wanted = row_count or min(DEFAULT_ROWS, len(labelled))
    if wanted >= len(labelled):
        return labelled
    return np.sort(generator.choice(labelled, size=wanted, replace=False))


def impact_metric(target: Target) -> str:
    """The metric the target type's predictions are scored with (its `impact_metric`), or an InputError."""
    metric = target.type.impact_metric
    if metric is None:
        raise InputError(
            f"feature impact scores predictions against a target: not available for {target.type} models",
            hint="DataRobot uses SHAP-based impact for unsupervised models; cmkit does not compute it",
        )
    return metric


def check_dataset(dataset: Dataset, target: Target) -> None:
    """Can this dataset score this model? InputError naming what is missing."""
    impact_metric(target)
    if dataset.target is None:
        raise InputError(
            "feature impact needs the dataset's target column", file=dataset.path, hint="set --target-name"
        )
    if not dataset.columns:
        raise InputError("the dataset has no feature columns", file=dataset.path, line=1)


def compute(
    url: str,
    dataset: Dataset,
    target: Target,
    options: FeatureImpactOptions | None = None,
    events: Events | None = None,
    cancel: threading.Event | None = None,
) -> FeatureImpactResult:
    """Permutation impact of every feature column of `dataset` on the server at `url`."""
    options = options or FeatureImpactOptions()
    events = events or Events()
    check_dataset(dataset, target)
    metric = impact_metric(target)
    started = time.monotonic()
    rows = _sample(dataset, options.row_count, np.random.default_rng(options.seed))
    truth = _truth(dataset, target, rows)
    base = {name: [values[i] for i in rows] for name, values in dataset.columns.items()}
    names = list(base)
    client = ModelClient(
        url, timeout=options.request_timeout, parallelism=options.parallelism, headers=options.headers
    )

    def predict(name: str | None) -> float:
        if cancel is not None and cancel.is_set():
            raise FeatureImpactFailed("feature impact was cancelled")
        columns = base
        if name is not None:
            # One generator per feature, seeded by its position: the same shuffle whatever
            # the order in which the parallel requests run.
            order = np.random.default_rng([options.seed, names.index(name)]).permutation(len(rows))
            columns = {**base, name: [base[name][j] for j in order]}
        answer = client.predict(encode_payload(columns))
        verdict = judge(answer.status, answer.text, len(rows), target)
        if not verdict.ok or verdict.values is None:
            what = f"with '{name}' permuted" if name is not None else "as is"
            raise FeatureImpactFailed(f"the model failed to predict the data {what}: {verdict.summary()}")
        return score(verdict.values, truth, target)

    try:
        events.stage(f"feature impact: {len(names)} features x {len(rows)} rows ({metric})")
        baseline = predict(None)
        scores: dict[str, float] = {}
        for done, (name, value) in enumerate(zip(names, client.map(predict, names), strict=True), start=1):
            scores[name] = value
            events.progress("feature impact", done, len(names), ITEMS)
    finally:
        client.close()
    return FeatureImpactResult(
        metric=metric,
        baseline=baseline,
        rows=len(rows),
        row_count=options.row_count,
        impacts=rank({name: value - baseline for name, value in scores.items()}),
        seconds=time.monotonic() - started,
    )


def rank(impacts: dict[str, float]) -> list[FeatureImpactItem]:
    """Most impactful first; normalised so the top impact is 1 (0 when nothing has impact)."""
    top = max(impacts.values(), default=0.0)
    ordered = sorted(impacts.items(), key=lambda item: (-item[1], item[0]))
    return [FeatureImpactItem(name, float(value), float(value / top) if top > 0 else 0.0) for name, value in ordered]
