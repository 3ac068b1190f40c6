#!/usr/bin/env python3
"""`cmkit lint` on the sample bundles, as a pre-commit hook runs it: the command's wall time.

Issue 26's target: under 0.3 s on a sample bundle, now that lint parses every .py, scans the
imports against requirements.txt and the environment's packages (cached) and checks the known
conflicts. The floor is `cmkit --version` in the same run: the interpreter's start and the CLI's
imports, which every command pays. Each figure is the median of repeated runs (and its worst),
after one warm-up run that fills the environment's package cache.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402

SAMPLES = ("binary_breast_cancer", "multiclass_iris", "regression_diabetes")


def wall(command: list[str], repeats: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, env=env, capture_output=True, check=False)  # warm-up: the cache, the page cache
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - began)
    return times


def in_process(bundle: Path, repeats: int) -> float:
    from cmkit.lint import lint_bundle

    lint_bundle(bundle)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        lint_bundle(bundle)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 20
    cmkit = [sys.executable, "-m", "cmkit"]
    floor = statistics.median(wall([*cmkit, "--version"], repeats))
    rows = [Row("`cmkit --version` (the floor: start and imports)", f"{floor * 1000:.0f} ms")]
    for name in SAMPLES:
        bundle = ROOT / "sample_models" / name
        times = wall([*cmkit, "lint", str(bundle)], repeats)
        median = statistics.median(times)
        rows.append(
            Row(
                f"`cmkit lint sample_models/{name}`: wall, median (worst) of {repeats}",
                f"{median * 1000:.0f} ms ({max(times) * 1000:.0f} ms)",
                f"{floor * 1000:.0f} ms",
                f"+{(median - floor) * 1000:.0f} ms",
                "< 0.3 s",
            )
        )
        rows.append(Row(f"lint_bundle({name}) in-process, median", f"{in_process(bundle, repeats) * 1000:.2f} ms"))
    return rows


if __name__ == "__main__":
    from bench.common import table

    print(table(run("--quick" in sys.argv)))
