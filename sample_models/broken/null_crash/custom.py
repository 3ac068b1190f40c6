"""BROKEN on purpose (cmkit test-local: nullValueImputation): crashes on missing values.

The model casts its features to integers, which cannot hold a missing value: a column of nulls
(as the null-imputation check sends) makes predict() raise. The sample data has no missing
values, so every other check passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def load_linear(code_dir: str) -> dict[str, Any]:
    """The template's linear house-price model (model.json)."""
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    return {
        "features": spec["features"],
        "means": np.asarray(spec["means"], dtype=float),
        "coef": np.asarray(spec["coef"], dtype=float),
        "intercept": float(spec["intercept"]),
    }


def linear(model: dict[str, Any], values: np.ndarray) -> np.ndarray:
    values = np.where(np.isnan(values), model["means"], values)
    return values @ model["coef"] + model["intercept"]


def load_model(code_dir: str) -> dict[str, Any]:
    return load_linear(code_dir)


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    # The bug: int64 has no NaN, so astype() raises on the first missing value.
    values = X[model["features"]].astype("int64").to_numpy(dtype=float)
    return linear(model, values)
