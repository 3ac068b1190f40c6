"""BROKEN on purpose (cmkit test-local: longRunningService, under a memory limit): needs ~800 MB.

load_model() allocates and touches about 800 MB. Under a 512 MB container limit the kernel
kills the worker (OOM) during its load, and the runtime exits with code 4 instead of ever
getting ready. Without a limit it works, after taking the memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BALLAST_BYTES = 800 * 1024 * 1024


def load_model(code_dir: str) -> np.ndarray:
    # np.ones writes every byte, so the pages are resident (a bare allocation would only reserve them).
    return np.ones(BALLAST_BYTES, dtype=np.uint8)


def predict(model: np.ndarray, X: pd.DataFrame) -> np.ndarray:
    return X.select_dtypes("number").fillna(0.0).sum(axis=1).to_numpy()
