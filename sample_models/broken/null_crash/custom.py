"""BROKEN on purpose (cmkit test-local: nullValueImputation): a missing value crashes predict().

It casts the features to int64, which cannot hold a missing value: complete rows predict fine,
a column of nulls makes predict() raise (HTTP 500).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> np.ndarray:
    return X.astype("int64").sum(axis=1).to_numpy(dtype=float)  # the bug: int64 has no NaN
