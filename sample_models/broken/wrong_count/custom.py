"""BROKEN on purpose (cmkit test-local: errorCheck): one prediction fewer than the rows sent."""

from __future__ import annotations

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    return np.zeros(len(X) - 1)  # the bug: drops the last row
