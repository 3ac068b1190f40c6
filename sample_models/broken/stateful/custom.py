"""BROKEN on purpose (cmkit test-local: sideEffects): state carried from one request to the next.

The model counts the requests it has served and the count leaks into its predictions, so the
same rows sent twice get different answers. Everything else about the bundle is correct.
"""

from __future__ import annotations

import itertools
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


# The bug: module-level state that every request of this worker process mutates.
_requests_served = itertools.count()


def load_model(code_dir: str) -> dict[str, Any]:
    return load_linear(code_dir)


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    drift = 0.5 * next(_requests_served)
    return linear(model, X[model["features"]].to_numpy(dtype=float, na_value=np.nan)) + drift
