"""Diabetes progression one year after baseline: a scikit-learn Ridge pipeline (model.joblib).

Trained by sample_models/build.py on scikit-learn's diabetes data set; the pipeline imputes
missing values (medians), scales, then regresses. The server (server.py) calls load_model() once
per worker and predict() per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd


def load_model(code_dir: str) -> Any:
    return joblib.load(Path(code_dir) / "model.joblib")


def predict(model: Any, X: pd.DataFrame) -> np.ndarray:
    # The columns the pipeline was trained on, by name: extra columns (the target) are left out,
    # and a column of nulls (object dtype) becomes NaN for the imputer.
    return model.predict(X[model.feature_names_in_].astype("float64"))
