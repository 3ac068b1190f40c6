"""A model's raw output -> the predictions of `predict_no_state`, or BadPredictions (HTTP 500).

Whatever the model format, its output ends here: numbers for regression and anomaly models,
`{label: probability}` per row for classifiers (labels in declared order), one string per row for
text generation, vector databases and geopoints (`POINT (x y)`: the checks judge the point, as
DRUM's server sends what the model returns). DRUM's `score` DataFrames (a `Predictions` column,
or one column per label) are read as DRUM reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cmkit_runtime.target import Target
from cmkit_runtime.target_types import LabelKind

# Tolerance of the check that each row's probabilities sum to 1 (float32 models land near 1e-7).
PROBABILITY_TOLERANCE = 1e-5
# The column DRUM's `score` returns for single-column targets; text generation also uses resultText.
PREDICTIONS_COLUMN = "Predictions"
TEXT_COLUMN = "resultText"


class BadPredictions(Exception):
    """The model returned something that cannot be sent as predictions."""


def single_column(frame: pd.DataFrame, target: Target) -> Any:
    """DRUM's rule for single-column targets: the only column, else Predictions (or the target's)."""
    if frame.shape[1] == 1:
        return next(frame.items())[1]  # iloc[:, 0], in a third of its ~18 us (every DRUM-hook request)
    for name in (PREDICTIONS_COLUMN, TEXT_COLUMN, target.name):
        if name is not None and name in frame.columns:
            return frame[name]
    raise BadPredictions(
        f"score() returned columns {[str(c) for c in frame.columns]}; a {target.type} model returns one "
        f"column, or a '{PREDICTIONS_COLUMN}' column among others"
    )


def _as_array(raw: Any, source: str) -> np.ndarray:
    values = raw.to_numpy() if isinstance(raw, pd.DataFrame | pd.Series) else raw
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise BadPredictions(f"{source} must return numbers: {exc}") from None


def _check_finite(values: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BadPredictions(
            f"{source} returned a non-finite value (NaN or infinity) for row {row}; "
            "JSON cannot carry it: impute or clip in the model"
        )


def _check_rows(values: np.ndarray, rows: int, source: str) -> None:
    if values.ndim == 0 or values.shape[0] != rows:
        got = 1 if values.ndim == 0 else values.shape[0]
        raise BadPredictions(f"{source} returned {got} predictions for {rows} rows")


def same_label(a: Any, b: str) -> bool:
    """Labels compare as strings, and as numbers when both read as numbers ("1" == 1.0), as DRUM does."""
    if str(a) == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def order_by_labels(columns: list[Any], labels: tuple[str, ...]) -> list[int] | None:
    """Positions of `labels` among `columns` (model classes or DataFrame columns), or None."""
    if len(columns) != len(labels):
        return None
    positions: list[int] = []
    for label in labels:
        found = [i for i, column in enumerate(columns) if same_label(column, label)]
        if len(found) != 1:
            return None
        positions.append(found[0])
    return positions


def _label_columns(raw: Any, labels: tuple[str, ...], source: str) -> Any:
    """A DataFrame with named columns is taken by name, in `labels` order; names that are not the
    labels are an error naming both (as DRUM's), never a rename by position. A DataFrame without
    names (a RangeIndex, as `pd.DataFrame(array)` makes) is read by position, as an array is."""
    if not isinstance(raw, pd.DataFrame):
        return raw
    positions = order_by_labels(list(raw.columns), labels)
    if positions is not None:
        return raw.iloc[:, positions]
    if isinstance(raw.columns, pd.RangeIndex):
        return raw
    raise BadPredictions(
        f"expected predictions to have columns {sorted(labels)} (the configured labels), but {source} returned "
        f"columns {[str(c) for c in raw.columns]}: make the labels the model's class names"
    )


def _check_probabilities(matrix: np.ndarray, source: str) -> None:
    _check_finite(matrix, source)
    if ((matrix < 0) | (matrix > 1)).any():
        raise BadPredictions(f"{source} returned probabilities outside [0, 1]")
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise BadPredictions(f"the class probabilities of row {row} sum to {sums[row]:.6g}, not 1")


def _numbers(raw: Any, rows: int, source: str) -> np.ndarray:
    values = _as_array(raw, source)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    _check_rows(values, rows, source)
    if values.ndim != 1:
        raise BadPredictions(f"{source} must return one number per row, got shape {values.shape}")
    _check_finite(values, source)
    return values  # an array: the JSON writer takes it without building a Python list


def _texts(raw: Any, rows: int, source: str, target: Target) -> list[str]:
    values = raw.to_numpy() if isinstance(raw, pd.DataFrame | pd.Series) else np.asarray(raw, dtype=object)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    _check_rows(values, rows, source)
    texts: list[str] = values.tolist()
    for row, value in enumerate(texts):
        if not isinstance(value, str):
            raise BadPredictions(f"{source} must return one string per row ({target.type}); row {row} is {value!r}")
    return texts


def _binary(raw: Any, target: Target, rows: int, source: str) -> list[dict[str, float]]:
    positive, negative = target.labels
    values = _as_array(_label_columns(raw, (negative, positive), source), source)
    _check_rows(values, rows, source)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 1:  # positive-class probabilities
        values = np.column_stack((1.0 - values, values))
    if values.ndim != 2 or values.shape[1] != 2:
        raise BadPredictions(
            f"a binary {source} returns positive-class probabilities (one per row) or an (n, 2) "
            f"matrix ordered [negative, positive], got shape {values.shape}"
        )
    _check_probabilities(values, source)
    return [{positive: p, negative: q} for q, p in values.tolist()]


def _multiclass(raw: Any, target: Target, rows: int, source: str) -> list[dict[str, float]]:
    labels = target.labels
    values = _as_array(_label_columns(raw, labels, source), source)
    _check_rows(values, rows, source)
    if values.ndim != 2 or values.shape[1] != len(labels):
        raise BadPredictions(
            f"a multiclass {source} returns an (n, {len(labels)}) probability matrix in the order of "
            f"classLabels {list(labels)}, got shape {values.shape}"
        )
    _check_probabilities(values, source)
    return [dict(zip(labels, row, strict=True)) for row in values.tolist()]


def format_predictions(raw: Any, target: Target, rows: int, source: str = "predict()") -> list[Any] | np.ndarray:
    """The model's output -> the JSON predictions list for this target type, or BadPredictions.

    `source` names what produced the output in error messages (predict(), score()...).
    """
    if target.type.numeric_predictions:
        return _numbers(raw, rows, source)
    if target.type.text_predictions:
        return _texts(raw, rows, source, target)
    if target.type.label_kind is LabelKind.PAIR:
        return _binary(raw, target, rows, source)
    return _multiclass(raw, target, rows, source)
