#!/usr/bin/env python3
"""Comparison 1: null-value imputation on a 40-column x 2,000-row dataset, no Docker on either side.

The same scikit-learn pipeline (imputer, scaler, ridge) is checked by
`cmkit test-local --runtime process` with only nullValueImputation enabled (errorCheck and
sideEffects skipped; longRunningService always runs) and by `drum validation`, whose
null-value test starts a prediction process per column. Wall time of each command, median of
repeats, after a warm-up run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, drum_code_dir, drum_venv, median_seconds, python_env, ratio, table
from cmkit.scaffold import init_bundle, make_spec

CUSTOM = '''"""A scikit-learn pipeline over 40 numeric columns (bench/null_imputation.py)."""
from pathlib import Path

import joblib


def load_model(code_dir):
    return joblib.load(Path(code_dir) / "model.joblib")


def predict(model, X):
    return model.predict(X[model.feature_names_in_].astype("float64"))
'''


def build(columns: int, rows: int) -> tuple[Path, Path, Path]:
    """A cmkit bundle and a DRUM code dir serving the same pipeline, and the dataset."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = WORK / f"nulls-{columns}x{rows}"
    shutil.rmtree(root, ignore_errors=True)
    generator = np.random.default_rng(0)
    X = pd.DataFrame(generator.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    y = X.to_numpy() @ generator.normal(size=columns) + generator.normal(size=rows)
    model = make_pipeline(SimpleImputer(), StandardScaler(), Ridge()).fit(X, y)
    bundle = root / "bundle"
    init_bundle(bundle, make_spec("regression", "bench-nulls"))
    (bundle / "model.json").unlink()
    (bundle / "custom.py").write_text(CUSTOM)
    joblib.dump(model, bundle / "model.joblib")
    # cmkit reads the target column (the template's metadata names it "price") and removes it;
    # DRUM's validation takes features only.
    X.assign(price=y).to_csv(bundle / "data" / "bench.csv", index=False)
    features = root / "features.csv"
    X.to_csv(features, index=False)
    return bundle, drum_code_dir(bundle, root / "drum"), features


def run(quick: bool = False) -> list[Row]:
    columns, rows, repeats = (8, 300, 1) if quick else (40, 2000, 5)
    bundle, drum_code, features = build(columns, rows)
    env = {**python_env(), "CUSTOM_MODEL_WORKERS": "1"}
    cmkit = [
        sys.executable,
        "-m",
        "cmkit",
        "test-local",
        str(bundle),
        "--env",  # the host's environment no longer reaches the model
        "CUSTOM_MODEL_WORKERS=1",
        "--runtime",
        "process",
        "--dataset",
        str(bundle / "data" / "bench.csv"),
        "--check",
        "errorCheck=skip",
        "--check",
        "sideEffects=skip",
        "--check",
        "nullValueImputation=fail",
        "--json",
    ]
    venv = drum_venv()
    drum = [
        str(venv / "bin" / "drum"),
        "validation",
        "--code-dir",
        str(drum_code),
        "--input",
        str(features),
        "--target-type",
        "regression",
    ]

    def run_cmkit() -> None:
        subprocess.run(cmkit, check=True, capture_output=True, env=env)

    def run_drum() -> None:
        result = subprocess.run(
            drum, capture_output=True, text=True, env={**env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        )
        if "Null value imputation" not in result.stdout:
            raise RuntimeError(
                f"drum validation did not run its null test: {result.stdout[-1500:]}{result.stderr[-1500:]}"
            )

    ours = median_seconds(run_cmkit, repeats, warmup=1)
    theirs = median_seconds(run_drum, repeats, warmup=0 if quick else 1)
    return [
        Row(
            f"nullValueImputation, {columns} columns x {rows:,} rows, no Docker: wall time",
            f"{ours:.2f} s",
            f"{theirs:.2f} s",
            ratio(theirs, ours) + " faster",
            ">= 10x faster",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
