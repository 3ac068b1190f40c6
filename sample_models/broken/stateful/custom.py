"""BROKEN on purpose (cmkit test-local: sideEffects): predictions drift with every request served.

A module-level counter leaks into the predictions, so the same rows sent twice get different
answers, and rows predicted one by one differ from the batch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

_requests_served = itertools.count()


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    drift = 0.5 * next(_requests_served)  # the bug: state kept between requests
    return X.select_dtypes("number").fillna(0.0).sum(axis=1).to_numpy() + drift
