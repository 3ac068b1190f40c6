"""Your model: the one file of this bundle you edit. The model runtime (cmkit-runtime) does everything else.

It calls two functions:

- `load_model(code_dir)` once per worker process, at start, in the background (the server
  answers 503 until it returns). Load artifacts here, never in predict(). If it raises, the
  server logs the traceback and exits.
- `predict(model, X)` for each request, possibly from several threads at once: X is a pandas
  DataFrame with the request's columns (a missing value is NaN or None). Return one point per
  row of X, in row order, as well-known text: `POINT (longitude latitude)`.

The model shipped here assigns each delivery address (its longitude and latitude) to the nearest
of the depots listed in model.json: a working geopoint start that needs no machine-learning
library. Replace it with yours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def load_model(code_dir: str) -> dict[str, Any]:
    """The depots (name, longitude, latitude) and the columns that hold an address's position."""
    with open(Path(code_dir) / "model.json", encoding="utf-8") as handle:
        spec = json.load(handle)
    return {
        "columns": spec["columns"],
        "depots": np.asarray([[d["lon"], d["lat"]] for d in spec["depots"]], dtype=float),
        "centre": np.asarray(spec["centre"], dtype=float),
    }


def predict(model: dict[str, Any], X: pd.DataFrame) -> list[str]:
    """The nearest depot of each row's address, as `POINT (lon lat)`; a missing position: the centre's."""
    positions = X[model["columns"]].to_numpy(dtype=float, na_value=np.nan)
    positions = np.where(np.isnan(positions), model["centre"], positions)
    # Equirectangular distances: enough to rank depots a few kilometres apart.
    scale = np.array([np.cos(np.radians(model["centre"][1])), 1.0])
    gaps = ((positions[:, None, :] - model["depots"][None, :, :]) * scale) ** 2
    nearest = model["depots"][gaps.sum(axis=2).argmin(axis=1)]
    return [f"POINT ({lon:.4f} {lat:.4f})" for lon, lat in nearest]
