"""A geopoint model that answers "latitude, longitude" instead of a point: errorCheck must fail.

DataRobot reads a geopoint prediction as a point (`POINT (longitude latitude)`, well-known
text); two bare numbers are not one, and the order is the wrong way round too.
"""

from __future__ import annotations

import pandas as pd


def load_model(code_dir: str) -> None:
    return None


def predict(model: None, X: pd.DataFrame) -> list[str]:
    return [f"{lat}, {lon}" for lon, lat in zip(X["longitude"], X["latitude"], strict=True)]
