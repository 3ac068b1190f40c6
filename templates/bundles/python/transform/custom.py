"""Your transform: the one file of this bundle you edit. The model runtime (cmkit-runtime) does the rest.

A transform model turns rows into other rows (features for a model downstream, in a DataRobot
blueprint or a pipeline). The runtime calls two functions, DRUM's hooks:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load what the transform learnt here.
- `transform(data, model)` for each request, on `POST /transform/`: `data` is a pandas DataFrame
  of the request's CSV; a missing value is NaN. Return a DataFrame with exactly one row per row
  of `data`, in row order (a transform that drops or adds rows is refused). It may take a third
  argument, the target frame DataRobot sends under `y` (None without one).

The transform shipped here imputes missing numbers with their training medians, standardises
them with the training means and spreads, and one-hot encodes the categories it knows, from
model.json: a working start that needs no machine-learning library. Replace it with yours (a
fitted scikit-learn transformer saved as `model.pkl` is served without any hook, as DRUM does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def load_model(code_dir: str) -> dict[str, Any]:
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        return dict(json.load(handle))


def transform(data: pd.DataFrame, model: dict[str, Any]) -> pd.DataFrame:
    """Numbers imputed and standardised, categories one-hot encoded; one row out per row in."""
    out = pd.DataFrame(index=data.index)
    for name, stats in model["numbers"].items():
        values = pd.to_numeric(data[name], errors="coerce") if name in data else pd.Series(float("nan"), data.index)
        out[name] = (values.fillna(stats["median"]) - stats["mean"]) / stats["std"]
    for name, categories in model["categories"].items():
        values = data[name].astype("string") if name in data else pd.Series(pd.NA, data.index, dtype="string")
        for category in categories:
            out[f"{name}={category}"] = (values == category).fillna(False).astype(int)
    return out.round(6)
