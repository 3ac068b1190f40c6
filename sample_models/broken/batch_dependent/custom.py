"""BROKEN on purpose (cmkit test-local: sideEffects): a row's prediction depends on its batch.

The model predicts house prices, then "centres" them on the mean of the request: the same house
gets one price alone and another in a batch. Everything else about the bundle is correct.
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
    prices = linear(model, X[model["features"]].to_numpy(dtype=float, na_value=np.nan))
    # The bug: normalising by a statistic of the batch. A lone row always gets the intercept.
    return prices - prices.mean() + model["intercept"]
