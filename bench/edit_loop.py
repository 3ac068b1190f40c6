#!/usr/bin/env python3
"""Comparison 3: the edit loop, a warm `cmkit test-local` in Docker after editing model code.

cmkit's figure is the wall time of the whole command (CLI start, code-layer build, container,
checks, cleanup) after a one-line edit of custom.py, the environment and dependency layers
being cached. The floor is what no tool can avoid: starting a container from the same image
until its first 200 ping, plus the checks' own requests (the batch, one per null column and the
row-by-row ones, with the same parallelism) against it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from cmkit.checks.client import ModelClient, ServerUnreachable
from cmkit.checks.dataset import load_dataset
from cmkit.scaffold import init_bundle, make_spec

LABEL = {"cmkit.bench": "edit-loop"}


def bundle() -> Path:
    root = WORK / "edit-loop" / "bundle"
    shutil.rmtree(root.parent, ignore_errors=True)
    init_bundle(root, make_spec("regression", "bench-edit-loop"))
    return root


def test_local(path: Path) -> tuple[float, dict[str, object]]:
    command = [sys.executable, "-m", "cmkit", "test-local", str(path), "--json", "--label", "cmkit.bench=edit-loop"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=python_env(), check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return seconds, json.loads(result.stdout)


def floor(image_id: str, path: Path, prefix: str) -> float:
    """Container start to first 200, plus the checks' requests, on the same image."""
    client = docker.from_env()
    dataset = load_dataset(path / "data" / "sample.csv", "price")
    started = time.perf_counter()
    container = client.containers.run(
        image_id,
        detach=True,
        environment={"PORT": "8080", "URL_PREFIX": prefix},
        ports={"8080/tcp": ("127.0.0.1", None)},
        labels=LABEL,
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        model = ModelClient(f"http://127.0.0.1:{port}{prefix}", parallelism=8)
        while True:
            try:
                if model.ping(timeout=2) == 200:
                    break
            except ServerUnreachable:
                pass
            time.sleep(0.02)
        model.predict(dataset.payload())
        list(model.map(lambda name: model.predict(dataset.with_null_column(name)), list(dataset.columns)))
        list(model.map(lambda row: model.predict(dataset.row_payload(row)), range(dataset.rows)))
        model.ping()
        model.close()
        return time.perf_counter() - started
    finally:
        container.remove(force=True)
        client.close()


def run(quick: bool = False) -> list[Row]:
    repeats = 2 if quick else 5
    path = bundle()
    test_local(path)  # cold: builds the environment and dependency layers once
    ours, floors = [], []
    for i in range(repeats):
        custom = path / "custom.py"
        # Unique per run: code images are keyed by content, so an edit an earlier run made is cached.
        custom.write_text(custom.read_text() + f"\n# edit {i} {time.time_ns()}\n")
        seconds, document = test_local(path)
        assert document["overallStatus"] == "succeeded", document["testingStatus"]
        image = document["details"]["image"]  # type: ignore[index]
        assert image["environment"]["cached"] and image["dependencies"]["cached"] and not image["code"]["cached"]
        ours.append(seconds)
        floors.append(floor(image["code"]["id"], path, str(document["details"]["urlPrefix"])))  # type: ignore[index]
    ours_median, floor_median = sorted(ours)[len(ours) // 2], sorted(floors)[len(floors) // 2]
    return [
        Row(
            "edit loop: warm `cmkit test-local` (Docker) after editing custom.py, vs container start + checks' "
            "requests",
            f"{ours_median:.2f} s",
            f"{floor_median:.2f} s",
            ratio(ours_median, floor_median),
            "<= 1.5x",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
