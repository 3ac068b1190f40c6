#!/usr/bin/env python3
"""`cmkit predict` on a bundle `cmkit serve` already runs, against predict starting its own server.

Issue 26's one-shot prediction "reusing a warm server": predict finds serve's note
(cmkit/warmserver.py) and sends its rows there. Both sides are the whole command's wall time on
the diabetes sample (89 rows, the process runtime, its venv already built), the median of
repeated runs after one warm-up; the warm side checks that the serve's server was the one used.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402

BUNDLE = ROOT / "sample_models" / "regression_diabetes"


def timed(command: list[str], env: dict[str, str], repeats: int) -> tuple[list[float], list[dict[str, object]]]:
    subprocess.run(command, env=env, capture_output=True, check=True)  # warm-up: venv, page cache
    times, documents = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - began)
        documents.append(json.loads(done.stdout))
    return times, documents


def run(quick: bool = False) -> list[Row]:
    repeats = 2 if quick else 7
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmkit = [sys.executable, "-m", "cmkit"]
    with tempfile.TemporaryDirectory(prefix="cmkit-bench-predict-") as folder:
        predict = [
            *cmkit,
            *("predict", str(BUNDLE), "--runtime", "process", "--json"),
            *("--input", str(BUNDLE / "data" / "test.csv"), "--output", str(Path(folder) / "p.csv")),
        ]
        cold, _ = timed([*predict, "--no-reuse"], env, repeats)
        serve = subprocess.Popen(
            [*cmkit, "serve", str(BUNDLE), "--runtime", "process", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert serve.stdout is not None
            served = json.loads(serve.stdout.readline())  # one line once the server answers
            warm, documents = timed(predict, env, repeats)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
    used = {document.get("warmServer") for document in documents}
    assert used == {served["url"]}, f"predict did not use the served server: {used} vs {served['url']}"
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    return [
        Row(
            f"`cmkit predict` diabetes (89 rows, process runtime), median of {repeats}: with `cmkit serve` "
            "running vs starting its own",
            f"{warm_median:.2f} s",
            f"{cold_median:.2f} s",
            f"{cold_median / warm_median:.1f}x faster",
        )
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(run("--quick" in sys.argv)))
