#!/usr/bin/env python3
"""Comparison 6: the four checks on wide and long data, against the model's own predict time.

Each shape gets a `cmkit init` regression bundle whose model.json is a linear model over every
column (the template's custom.py, unchanged: it fills a missing value with the column's mean),
and a CSV of that many rows and columns. `cmkit test-local --runtime process --json` runs all
four checks (two workers, as on the user's laptop) and reports its wall time and peak RSS.

The floor is the model's own predict() time on the same payloads the checks send: the whole
dataset (errorCheck), each column made null (nullValueImputation, the rows test-local reports
it sent) and the sideEffects rows one at a time, called in-process on DataFrames built before
the clock starts. Everything above the floor is cmkit's (JSON, HTTP, DataFrames, judging).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from cmkit.scaffold import init_bundle, make_spec

SHAPES = ((1000, 1000, "< 20 s"), (100, 10_000, "< 60 s"), (100_000, 4, "< 3 s"))
QUICK_SHAPES = ((200, 200, ""), (20, 2000, ""), (20_000, 4, ""))


def build(rows: int, columns: int) -> Path:
    """A regression bundle with a linear model over `columns` features and a matching dataset."""
    bundle = WORK / f"wide-{rows}x{columns}"
    marker = bundle / ".built"
    if marker.exists():
        return bundle
    shutil.rmtree(bundle, ignore_errors=True)
    init_bundle(bundle, make_spec("regression", f"wide-{rows}x{columns}"))
    generator = np.random.default_rng(columns)
    names = [f"x{i}" for i in range(columns)]
    values = generator.normal(50.0, 10.0, size=(rows, columns)).round(3)
    coef = generator.normal(size=columns).round(4)
    (bundle / "model.json").write_text(
        json.dumps(
            {
                "features": names,
                "means": values.mean(axis=0).round(3).tolist(),
                "coef": coef.tolist(),
                "intercept": 1.5,
            }
        )
    )
    frame = pd.DataFrame(values, columns=names)
    frame["price"] = (values @ coef + 1.5).round(3)
    frame.to_csv(bundle / "data" / "sample.csv", index=False)
    marker.touch()
    return bundle


def test_local(bundle: Path, extra: list[str] | None = None) -> tuple[float, dict[str, Any]]:
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "process", "--json"]
    started = time.perf_counter()
    result = subprocess.run(command + (extra or []), capture_output=True, text=True, env=python_env(), check=False)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1) or not result.stdout:
        raise RuntimeError(f"test-local failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds, json.loads(result.stdout)


def _custom(bundle: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"custom_{bundle.name.replace('-', '_')}", bundle / "custom.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def floor(bundle: Path, document: dict[str, Any]) -> float:
    """Seconds the model's predict() takes on the payloads test-local sent (see the docstring)."""
    custom = _custom(bundle)
    model = custom.load_model(str(bundle))
    features = pd.read_csv(bundle / "data" / "sample.csv").drop(columns=["price"])
    checks = document["details"]["checks"]
    null_rows = checks["nullValueImputation"]["rowsSent"]
    sample = features.iloc[np.linspace(0, len(features) - 1, null_rows).round().astype(int)].reset_index(drop=True)
    side_rows = checks["sideEffects"]["rowsCompared"]
    singles = [
        features.iloc[[i]].reset_index(drop=True)
        for i in np.linspace(0, len(features) - 1, side_rows).round().astype(int)
    ]
    total = 0.0
    started = time.perf_counter()
    custom.predict(model, features)
    total += time.perf_counter() - started
    for name in features.columns:
        frame = sample.copy()
        frame[name] = np.nan
        started = time.perf_counter()
        custom.predict(model, frame)
        total += time.perf_counter() - started
    for frame in singles:
        started = time.perf_counter()
        custom.predict(model, frame)
        total += time.perf_counter() - started
    return total


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    for n_rows, n_columns, target in QUICK_SHAPES if quick else SHAPES:
        bundle = build(n_rows, n_columns)
        wall, document = test_local(bundle)
        statuses = {name: check["status"] for name, check in document["testingStatus"].items()}
        if document["overallStatus"] != "succeeded":
            raise RuntimeError(f"{bundle.name}: {statuses}")
        nulls = document["details"]["checks"]["nullValueImputation"]
        rss = document["details"].get("peakRssMiB")
        model_seconds = floor(bundle, document)
        rows.append(
            Row(
                f"all four checks, {n_rows:,} rows x {n_columns:,} columns, process runtime: wall time "
                f"(null requests of {nulls['rowsSent']:,} rows; cmkit peak RSS {rss} MiB)",
                f"{wall:.1f} s",
                f"{model_seconds:.2f} s (floor)",
                ratio(wall, model_seconds) + " of floor",
                target,
            )
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--build", nargs=2, type=int, metavar=("ROWS", "COLUMNS"), help="only build this bundle")
    options = parser.parse_args()
    if options.build:
        print(build(*options.build))
    else:
        print(table(run(options.quick)))
