"""BROKEN on purpose (cmkit test-local: errorCheck): one prediction fewer than the rows sent.

Served by raw_server.py (no template checks). predict_json() returns the wire predictions as
they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_model(code_dir: str) -> dict[str, Any]:
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        return json.load(handle)


def scores(model: dict[str, Any], columns: dict[str, list[Any]]) -> list[float]:
    """The linear part of the template's model, row by row (missing values take the means)."""
    rows = len(next(iter(columns.values())))
    features = list(zip(model["features"], model["means"], model["coef"], strict=True))
    return [
        model["intercept"]
        + sum(c * (m if columns[name][i] is None else float(columns[name][i])) for name, m, c in features)
        for i in range(rows)
    ]


def predict_json(model: dict[str, Any], columns: dict[str, list[Any]]) -> list[float]:
    return scores(model, columns)[:-1]  # the bug: drops the last row
