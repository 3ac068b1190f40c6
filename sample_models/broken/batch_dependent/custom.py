"""BROKEN on purpose (cmkit test-local: sideEffects): a row's prediction depends on its batch.

The score (the sum of the numeric features) is centred on the mean of the request, so a row
predicted alone always gets 0 and a different value than in a batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    scores = X.select_dtypes("number").fillna(0.0).sum(axis=1).to_numpy()
    return scores - scores.mean()  # the bug: normalising by a statistic of the batch
