"""Your model: the one file of this bundle you edit. The model runtime (cmkit-runtime) does everything else.

It calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here, never in predict(). If it raises, the
  server logs the traceback and exits.
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns, in the order sent (the target column may be among them,
  and a missing value is NaN or None). Return one number per row of X, in row order.

The model shipped here is a linear regression of house prices fitted on data/sample.csv, stored
as plain JSON (model.json): a working start that needs no machine-learning library. Replace it
with yours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> dict[str, Any]:
    """Read the model from the bundle folder (`code_dir`) and return it; predict() receives it.

    To serve a scikit-learn (or any picklable) model instead: save it with
    `joblib.dump(model, "model.joblib")`, add scikit-learn and joblib, pinned to the versions you
    trained with, to requirements.txt, and write:

        import joblib
        return joblib.load(Path(code_dir) / "model.joblib")

    and in predict(): `return model.predict(X[model.feature_names_in_])`.
    """
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    return {
        "features": pd.Index(spec["features"]),  # an Index: wide requests are checked in one step
        "means": np.asarray(spec["means"], dtype=float),
        "coef": np.asarray(spec["coef"], dtype=float),
        "intercept": float(spec["intercept"]),
    }


def features_of(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """The model's feature columns as floats, missing values replaced by the training means."""
    if not X.columns.equals(model["features"]):  # select and order the columns only when needed
        missing = model["features"].difference(X.columns, sort=False)
        if len(missing):
            raise ValueError(f"missing feature column(s): {', '.join(map(str, missing))}")
        X = X.reindex(columns=model["features"])
    values = X.to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(values), model["means"], values)


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    """One predicted price (in thousands) per row of X."""
    return features_of(model, X) @ model["coef"] + model["intercept"]
