#!/usr/bin/env python3
"""Comparison 5: `cmkit push` of a bundle holding a 1 GiB artifact, against `cmkit emulator`.

Peak resident memory of the push process (sampled every 20 ms with psutil) and its upload
throughput, then the bytes a push sends after a one-file change, read from the emulator's
request journal (every request body of that push, against the changed file's size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from cmkit.scaffold import init_bundle, make_spec

TOKEN = "bench-token"
CHUNK = 16 * 1024 * 1024


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    command = [
        sys.executable,
        "-m",
        "cmkit",
        "emulator",
        "--json",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--token",
        TOKEN,
        "--runtime",
        "process",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=python_env())
    return process, json.loads(process.stdout.readline())  # type: ignore[union-attr]


def bundle(artifact_bytes: int) -> Path:
    root = WORK / "push" / "bundle"
    shutil.rmtree(root, ignore_errors=True)
    init_bundle(root, make_spec("regression", "bench-push"))
    with (root / "weights.bin").open("wb") as handle:  # random bytes: nothing compresses them
        for _ in range(artifact_bytes // CHUNK):
            handle.write(os.urandom(CHUNK))
        handle.write(os.urandom(artifact_bytes % CHUNK))
    return root


def push(path: Path, info: dict[str, str]) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, peak RSS in bytes, and the --json summary of one push."""
    env = {**python_env(), "CMKIT_CACHE_DIR": str(WORK / "push" / "cache")}
    command = [
        sys.executable,
        "-m",
        "cmkit",
        "push",
        str(path),
        "--endpoint",
        info["endpoint"],
        "--token",
        TOKEN,
        "--environment-id",
        info["environmentId"],
        "--json",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    output = process.stdout.read()  # type: ignore[union-attr]
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"push failed ({process.returncode}): {output[-2000:]}")
    return seconds, peak, json.loads(output)


def journal(info: dict[str, str]) -> list[dict[str, object]]:
    root = info["endpoint"].removesuffix("api/v2/")
    response = requests.get(root + "__emulator__/requests", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    return list(response.json()["requests"])


def clear_journal(info: dict[str, str]) -> None:
    root = info["endpoint"].removesuffix("api/v2/")
    requests.delete(root + "__emulator__/requests", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def run(quick: bool = False) -> list[Row]:
    size = 64 * 1024**2 if quick else 1024**3
    path = bundle(size)
    data_dir = WORK / "push" / "emulator"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(WORK / "push" / "cache", ignore_errors=True)
    process, info = start_emulator(data_dir)
    try:
        seconds, peak, summary = push(path, info)
        sent = int(summary["bytesUploaded"])  # type: ignore[arg-type]
        edited = path / "custom.py"
        edited.write_text(edited.read_text() + "\n# a one-line edit\n")
        clear_journal(info)
        _, _, patch = push(path, info)
        assert patch["action"] == "patch", patch["action"]
        body_bytes = sum(int(r["bytesReceived"]) for r in journal(info))  # type: ignore[arg-type]
        changed = edited.stat().st_size
    finally:
        process.terminate()
        process.wait(timeout=60)
    label = f"{size / 1024**3:g} GiB" if size >= 1024**3 else f"{size // 1024**2} MiB"
    return [
        Row(
            f"push, bundle with a {label} artifact: peak RSS of `cmkit push`",
            f"{peak / 1024**2:.0f} MB",
            "",
            "",
            "< 150 MB",
        ),
        Row(
            f"push, bundle with a {label} artifact: throughput (whole push, wall)",
            f"{sent / seconds / 1024**2:.0f} MiB/s",
        ),
        Row(
            "push after a one-file change: request bytes sent vs the file's size",
            f"{body_bytes} B",
            f"{changed} B",
            ratio(body_bytes, changed),
            "< 2x",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
