"""Breast cancer diagnosis (malignant or benign): a scikit-learn logistic regression pipeline (model.joblib).

Trained by sample_models/build.py on scikit-learn's breast cancer data set; the pipeline imputes
missing values (medians), scales, then classifies. The server (server.py) calls load_model() once
per worker and predict() per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd


def load_model(code_dir: str) -> Any:
    return joblib.load(Path(code_dir) / "model.joblib")


def predict(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    # The columns the pipeline was trained on, by name: extra columns (the target) are left out,
    # and a column of nulls (object dtype) becomes NaN for the imputer.
    probabilities = model.predict_proba(X[model.feature_names_in_].astype("float64"))
    # Columns named by class: the server matches them to the labels of model-metadata.yaml.
    return pd.DataFrame(probabilities, columns=model.classes_)
