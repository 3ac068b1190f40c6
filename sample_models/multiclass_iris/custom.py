"""Iris species from flower measurements: a scikit-learn multinomial logistic regression pipeline (model.joblib).

Trained by sample_models/build.py on scikit-learn's iris data set; the pipeline imputes
missing values (medians), scales, then classifies. The model runtime (cmkit-runtime) calls load_model() once
per worker and predict() per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd


def load_model(code_dir: str) -> Any:
    return joblib.load(Path(code_dir) / "model.joblib")


def features(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """The columns the pipeline was trained on, by name, as floats.

    Extra columns (the target) are left out, and a column of nulls (object dtype) becomes NaN
    for the imputer. reindex() is X[columns] without its indexing cost, once we know every column
    is there, and it is skipped when the columns already come in the model's order.
    """
    missing = [name for name in model.feature_names_in_ if name not in X.columns]
    if missing:
        raise KeyError(f"missing feature column(s): {', '.join(missing)}")
    if list(X.columns) != list(model.feature_names_in_):
        X = X.reindex(columns=model.feature_names_in_)
    return X.astype("float64")


def predict(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    probabilities = model.predict_proba(features(model, X))
    # Columns named by class: the server matches them to the labels of model-metadata.yaml.
    return pd.DataFrame(probabilities, columns=model.classes_)
