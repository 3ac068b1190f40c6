"""BROKEN on purpose (cmkit test-local: longRunningService, only with a short startup timeout).

load_model() takes about 8 seconds, as a large artifact or a slow download would, while
GET $URL_PREFIX/ answers 503. With a startup timeout longer than that every check passes.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

LOAD_SECONDS = 8.0


def load_model(code_dir: str) -> None:
    time.sleep(LOAD_SECONDS)  # stands in for a large artifact or a slow download


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    return X.select_dtypes("number").fillna(0.0).sum(axis=1).to_numpy()
