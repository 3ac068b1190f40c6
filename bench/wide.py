#!/usr/bin/env python3
"""Comparison 6: the four checks on wide and long data, against the model's own predict time.

Each shape gets a `cmkit init` regression bundle whose model.json is a linear model over every
column (the template's custom.py, unchanged: it fills a missing value with the column's mean),
and a CSV of that many rows and columns. `cmkit test-local --runtime process --json` runs all
four checks (two workers, as on the user's laptop) and reports its wall time and peak RSS.

The floor is the model's own predict() time on the same payloads the checks send: the whole
dataset (errorCheck), each column made null (nullValueImputation, the rows test-local reports
it sent) and the sideEffects rows one at a time, called in-process on the DataFrames the
runtime builds from those bodies, built before the clock starts. Everything above the floor is
cmkit's (JSON, HTTP, DataFrames, judging). The machine is shared: the CPU seconds of cmkit and
its servers are printed too, since a busy machine inflates wall times but not those.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from cmkit.checks.dataset import load_dataset
from cmkit.checks.protocols import Payload
from cmkit.checks.sampling import null_check_rows, spread
from cmkit.scaffold import init_bundle, make_spec
from cmkit_runtime.server import parse_request

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


def test_local(bundle: Path, extra: list[str] | None = None) -> tuple[float, dict[str, Any], float, float]:
    """Wall time, the JSON report, the largest RSS of one model-server process (MiB) and the CPU
    seconds of cmkit and its servers together (what a busy machine does not inflate)."""
    before = _children_cpu()
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "process", "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command + (extra or []), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env()
    )
    peak = [0.0]
    watcher = threading.Thread(target=_watch_servers, args=(process.pid, peak), daemon=True)
    watcher.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode not in (0, 1) or not stdout:
        raise RuntimeError(f"test-local failed ({process.returncode}): {stderr[-2000:]}")
    return seconds, json.loads(stdout), peak[0], _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _watch_servers(pid: int, peak: list[float]) -> None:
    """Sample the RSS of every cmkit-runtime process under `pid` until it exits."""
    try:
        parent = psutil.Process(pid)
        while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "cmkit-runtime" in " ".join(child.cmdline()):
                        peak[0] = max(peak[0], child.memory_info().rss / 2**20)
            time.sleep(0.05)
    except psutil.Error:
        return


def _custom(bundle: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"custom_{bundle.name.replace('-', '_')}", bundle / "custom.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def floor(bundle: Path, document: dict[str, Any]) -> float:
    """Seconds the model's predict() takes on the frames the runtime built from test-local's bodies."""
    custom = _custom(bundle)
    model = custom.load_model(str(bundle))
    dataset = load_dataset(bundle / "data" / "sample.csv", "price")
    checks = document["details"]["checks"]
    selection = null_check_rows(dataset.features)
    assert selection.rows == checks["nullValueImputation"]["rowsSent"]
    encoded = dataset.encoded(selection.indices)
    payloads: Iterator[Payload] = itertools.chain(
        [dataset.payload()],
        (encoded.with_null_column(name) for name in dataset.names),
        dataset.row_payloads(spread(dataset.rows, checks["sideEffects"]["rowsCompared"])),
    )
    total = 0.0
    for payload in payloads:
        frame = parse_request(payload.body)  # built before the clock starts
        started = time.perf_counter()
        custom.predict(model, frame)
        total += time.perf_counter() - started
    return total


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    for n_rows, n_columns, target in QUICK_SHAPES if quick else SHAPES:
        bundle = build(n_rows, n_columns)
        wall, document, server_rss, cpu = test_local(bundle)
        statuses = {name: check["status"] for name, check in document["testingStatus"].items()}
        if document["overallStatus"] != "succeeded":
            raise RuntimeError(f"{bundle.name}: {statuses}")
        nulls = document["details"]["checks"]["nullValueImputation"]
        rss = document["details"].get("peakRssMiB")
        size = (bundle / "data" / "sample.csv").stat().st_size / 2**20
        model_seconds = floor(bundle, document)
        rows.append(
            Row(
                f"all four checks, {n_rows:,} rows x {n_columns:,} columns, process runtime: wall time "
                f"(null requests of {nulls['rowsSent']:,} rows, {nulls.get('bodies', 'json')} bodies"
                f"{', values kept by the workers' if nulls.get('valuesKept') else ''}; "
                f"CSV {size:.0f} MiB, peak RSS cmkit {rss:.0f} MiB, "
                f"largest server process {server_rss:.0f} MiB)",
                f"{wall:.1f} s ({cpu:.1f} CPU s)",
                f"{model_seconds:.2f} s (floor)",
                ratio(wall, model_seconds) + " of floor",
                target,
            )
        )
        print(rows[-1].markdown(), file=sys.stderr, flush=True)  # a row as soon as it is measured
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
