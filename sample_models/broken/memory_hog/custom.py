"""BROKEN on purpose (cmkit test-local: longRunningService, under a memory limit): needs ~800 MB.

load_model() allocates and touches about 800 MB before loading the real model. Under a 512 MB
container limit the kernel kills the worker (OOM) during its load, and the server exits with
code 4 (gunicorn.conf.py) instead of ever getting ready. Without a limit it works, after taking
the memory.
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


BALLAST_BYTES = 800 * 1024 * 1024


def load_model(code_dir: str) -> dict[str, Any]:
    model = load_linear(code_dir)
    # np.ones writes every byte, so the pages are resident (a bare allocation would only reserve them).
    model["ballast"] = np.ones(BALLAST_BYTES, dtype=np.uint8)
    return model


def predict(model: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
    return linear(model, X[model["features"]].to_numpy(dtype=float, na_value=np.nan))
