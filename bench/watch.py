#!/usr/bin/env python3
"""Comparison 3b: the edit loop under `cmkit test-local --watch` (Docker), and how the server reloads.

cmkit's figure is the time from writing custom.py (a one-line edit of the template bundle) to
the watch's JSON line with the last check's result, read from its stdout: detecting the save,
the archive upload into the running container, the workers' reload, the four checks. The
floor is comparison 3's: a fresh container from the same image until its first 200, plus the
checks' requests. The first edit of a watch is a warm-up (its reload imports the serving stack
into gunicorn's master, once); saves are a second apart.

The second figure is the choice behind it: SIGHUP to cmkit-runtime's master (new workers
import custom.py afresh, the port stays open) against restarting the server, measured on one
container. A supervisor inside the container restarting the server process would pay the
boot part of the restart (Python, gunicorn, Flask, pandas, the model) without the container's
stop and start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from bench.edit_loop import floor
from cmkit.checks.readiness import wait_ready
from cmkit.engine.base import RunSpec
from cmkit.engine.docker import start_container
from cmkit.engine.reload import fetch_info, signal_reload, wait_generation
from cmkit.scaffold import init_bundle, make_spec

LABEL = "cmkit.bench=watch"
SAVE_GAP_SECONDS = 1.0


def bundle() -> Path:
    root = WORK / "watch" / "bundle"
    shutil.rmtree(root.parent, ignore_errors=True)
    init_bundle(root, make_spec("regression", "bench-watch"))
    return root


def watched_edits(path: Path, repeats: int) -> tuple[list[float], dict[str, Any], list[dict[str, Any]]]:
    """Seconds from each write of custom.py to the watch's report of it (after one warm-up edit)."""
    command = [sys.executable, "-m", "cmkit", "test-local", str(path), "--watch", "--json", "--label", LABEL]
    log = (WORK / "watch" / "stderr.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=python_env())
    assert process.stdout is not None
    try:
        first = json.loads(process.stdout.readline())
        assert first["overallStatus"] == "succeeded", first["testingStatus"]
        custom = path / "custom.py"
        times, runs = [], []
        for i in range(repeats + 1):
            time.sleep(SAVE_GAP_SECONDS)
            text = custom.read_text() + f"\n# edit {i}\n"
            started = time.perf_counter()
            custom.write_text(text)
            document = json.loads(process.stdout.readline())
            seconds = time.perf_counter() - started
            assert document["overallStatus"] == "succeeded", document["testingStatus"]
            assert document["details"]["watch"]["action"] == "reloaded", document["details"]["watch"]
            if i:
                times.append(seconds)
                runs.append(document)
        return times, first, runs
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()


def reload_against_restart(image_id: str, prefix: str, repeats: int) -> tuple[float, float, float]:
    """Median seconds to a model served by new code: SIGHUP reload, container restart, its boot part."""
    client = docker.from_env()
    key, value = LABEL.split("=")
    server = start_container(client, image_id, RunSpec(url_prefix=prefix, labels={key: value}), uuid.uuid4().hex[:12])
    try:
        assert wait_ready(server, 60).status == "succeeded"
        reloads, restarts, boots = [], [], []
        for i in range(repeats + 1):
            time.sleep(SAVE_GAP_SECONDS)
            started = time.perf_counter()
            info = fetch_info(server)
            assert info is not None
            assert wait_generation(server, signal_reload(server, info).generation, 60)
            if i:
                reloads.append(time.perf_counter() - started)
        container = server.container
        for _ in range(repeats):
            started = time.perf_counter()
            container.stop(timeout=3)
            stopped = time.perf_counter()
            container.start()
            server.refresh_address()
            assert wait_ready(server, 60).status == "succeeded"
            restarts.append(time.perf_counter() - started)
            boots.append(time.perf_counter() - stopped)
        return statistics.median(reloads), statistics.median(restarts), statistics.median(boots)
    finally:
        server.stop()
        client.close()


def run(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 9
    path = bundle()
    times, first, runs = watched_edits(path, repeats)
    image, prefix = first["details"]["image"]["code"]["id"], str(first["details"]["urlPrefix"])
    floors = [floor(image, path, prefix) for _ in range(2 if quick else 5)]
    ours, cold = statistics.median(times), statistics.median(floors)
    steps = {
        name: statistics.median(run["details"]["durations"].get(name, 0.0) for run in runs)
        for name in ("sync", "reload", "checks")
    }
    reload, restart, boot = reload_against_restart(image, prefix, 2 if quick else 5)
    breakdown = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items())
    return [
        Row(
            f"edit loop: `cmkit test-local --watch` (Docker), custom.py written -> last check's result ({breakdown}), "
            "vs container start + checks' requests",
            f"{ours:.2f} s",
            f"{cold:.2f} s",
            ratio(ours, cold),
            "<= 0.5 s, < 1x",
        ),
        Row(
            "reload after an edit: SIGHUP to the runtime's workers, vs restarting the container (its boot part "
            f"alone, what a supervisor would pay: {boot:.2f} s)",
            f"{reload:.2f} s",
            f"{restart:.2f} s",
            ratio(reload, restart),
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
