"""BROKEN on purpose (cmkit test-local: longRunningService with a short --startup-timeout): slow to load.

load_model() takes about 8 seconds. Meanwhile the server answers 503 on GET $URL_PREFIX/ (its
port is open, the model is not ready). With a startup timeout longer than that every check
passes; with `--startup-timeout 3` the long-running-service check fails.
"""

from __future__ import annotations

import json
import time
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


LOAD_SECONDS = 8.0


def load_model(code_dir: str) -> dict[str, Any]:
    time.sleep(LOAD_SECONDS)  # stands in for a large artifact or a slow download
    return load_linear(code_dir)


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    return linear(model, X[model["features"]].to_numpy(dtype=float, na_value=np.nan))
