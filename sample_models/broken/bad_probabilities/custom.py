"""BROKEN on purpose (cmkit test-local: errorCheck): class probabilities that do not sum to 1.

A binary model (labels "1" and "0", as in model-metadata.yaml) that gives both classes the same
probability, 0.7.
"""

from __future__ import annotations

import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"1": [0.7] * len(X), "0": [0.7] * len(X)})  # the bug: "0" should get 0.3
