#!/usr/bin/env python3
"""Comparison 4: the full check suite on a 5,000-row dataset.

`cmkit test-local` with all four checks on the sklearn sample model and 5,000 rows: wall time,
and the rows per second of sideEffects' row-by-row phase against the same server's own
single-row capacity (wrk, 8 keep-alive clients, as in comparison 2). Both with one worker in
the process runtime, so that they measure the same server; the Docker wall time is reported
too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, WORK, Row, python_env, ratio, server_process, table, wrk
from bench.server import PREFIX, cmkit_body
from cmkit.engine.base import free_port

SAMPLE = REPO / "sample_models" / "regression_diabetes"
TARGET = "progression"


def dataset(rows: int) -> Path:
    """`rows` rows drawn from the sample's test data, with a little noise so rows differ."""
    path = WORK / "full" / f"data-{rows}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        base = pd.read_csv(SAMPLE / "data" / "test.csv")
        frame = base.sample(n=rows, replace=True, random_state=1).reset_index(drop=True)
        features = [c for c in frame.columns if c != TARGET]
        offsets = (np.arange(rows)[:, None] % 7 - 3) * 1e-4 * np.ones((1, len(features)))
        frame[features] = frame[features].to_numpy() + offsets
        frame.to_csv(path, index=False)
    return path


def capacity(seconds: float) -> float:
    """The server's single-row requests per second, one worker, 8 keep-alive clients."""
    port = free_port()
    env = {**python_env(), "PORT": str(port), "URL_PREFIX": PREFIX, "CUSTOM_MODEL_WORKERS": "1"}
    url = f"http://127.0.0.1:{port}{PREFIX}"
    one = pd.read_csv(SAMPLE / "data" / "test.csv").drop(columns=[TARGET]).head(1)
    with server_process([str(SAMPLE / "start_server.sh")], env, url + "/", cwd=SAMPLE):
        return wrk(f"{url}/predict_no_state/", cmkit_body(one), "application/json", seconds=seconds).requests_per_second


def test_local(data: Path, runtime: str, side_effects_rows: int) -> tuple[float, dict[str, object]]:
    bundle = WORK / "full" / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(SAMPLE, bundle)
    (bundle / "data" / "bench.csv").write_text(data.read_text())
    command = [
        sys.executable,
        "-m",
        "cmkit",
        "test-local",
        str(bundle),
        "--env",  # the host's environment no longer reaches the model
        "CUSTOM_MODEL_WORKERS=1",
        "--runtime",
        runtime,
        "--json",
        "--dataset",
        str(bundle / "data" / "bench.csv"),
        "--side-effects-rows",
        str(side_effects_rows),
    ]
    if runtime == "docker":
        command += ["--label", "cmkit.bench=full-suite"]  # bench/run removes what it built (prune_bench_images)
    env = {**python_env(), "CUSTOM_MODEL_WORKERS": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"test-local failed: {result.stderr[-2000:]}")
    return seconds, json.loads(result.stdout)


def run(quick: bool = False) -> list[Row]:
    rows = 1000 if quick else 5000
    side_effects_rows = 300 if quick else 1000
    data = dataset(rows)
    rps = capacity(3.0 if quick else 15.0)
    wall, document = test_local(data, "process", side_effects_rows)
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    side = document["details"]["checks"]["sideEffects"]
    results = [
        Row(f"full check suite, {rows:,} rows, process runtime: wall time", f"{wall:.1f} s"),
        Row(
            f"sideEffects row-by-row phase ({side['rowsCompared']} rows): rows/s vs the server's single-row capacity",
            f"{side['rowsPerSecond']:.0f} rows/s",
            f"{rps:.0f} req/s",
            ratio(side["rowsPerSecond"], rps),
            ">= 0.80x",
        ),
    ]
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        test_local(data, "docker", side_effects_rows)  # warm the image cache
        docker_wall, _ = test_local(data, "docker", side_effects_rows)
        results.append(Row(f"full check suite, {rows:,} rows, Docker (warm image): wall time", f"{docker_wall:.1f} s"))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
