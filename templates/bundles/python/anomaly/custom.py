"""Your model: the one file of this bundle you edit. The model runtime (cmkit-runtime) does everything else.

It calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here, never in predict(). If it raises, the
  server logs the traceback and exits.
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns, in the order sent (a missing value is NaN or None).
  Return one anomaly score per row of X, in row order: higher means more anomalous.

An anomaly model learns without a target, so data/sample.csv has no target column and
model-metadata.yaml no targetName. The model shipped here scores machine sensor readings by how
far they sit from the typical reading (a robust z-score: median and scaled median absolute
deviation per sensor, fitted on data/sample.csv), stored as plain JSON (model.json): a working
start that needs no machine-learning library. Replace it with yours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> dict[str, Any]:
    """Read the model from the bundle folder (`code_dir`) and return it; predict() receives it.

    To serve a scikit-learn (or any picklable) detector instead, e.g. an IsolationForest: save it
    with `joblib.dump(model, "model.joblib")`, add scikit-learn and joblib, pinned to the
    versions you trained with, to requirements.txt, and write:

        import joblib
        return joblib.load(Path(code_dir) / "model.joblib")

    and in predict(): `return -model.score_samples(X[model.feature_names_in_])` (scikit-learn
    scores normal points higher; negate it so that higher means more anomalous).
    """
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    return {
        "features": pd.Index(spec["features"]),  # an Index: wide requests are checked in one step
        "center": np.asarray(spec["center"], dtype=float),
        "scale": np.asarray(spec["scale"], dtype=float),
    }


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """The root-mean-square robust z-score of each row's sensors; a missing sensor counts as typical."""
    if not X.columns.equals(model["features"]):  # select and order the columns only when needed
        missing = model["features"].difference(X.columns, sort=False)
        if len(missing):
            raise ValueError(f"missing feature column(s): {', '.join(map(str, missing))}")
        X = X.reindex(columns=model["features"])
    values = X.to_numpy(dtype=float, na_value=np.nan)
    z = (values - model["center"]) / model["scale"]
    return np.sqrt(np.mean(np.nan_to_num(z, nan=0.0) ** 2, axis=1))
