"""BROKEN on purpose (cmkit test-local: errorCheck): the first prediction is NaN.

JSON cannot carry a NaN: the runtime refuses to send one and answers 500 with the reason, so
errorCheck fails on the first request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    predictions = np.zeros(len(X))
    predictions[0] = np.nan  # the bug
    return predictions
