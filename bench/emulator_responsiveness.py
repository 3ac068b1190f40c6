#!/usr/bin/env python3
"""How long other clients wait while the emulator takes a long requirements.txt.

    python bench/emulator_responsiveness.py [--lines 20000]

A real `cmkit emulator` (process runtime) on a fresh data dir; one client uploads a version
whose requirements.txt has `--lines` lines (parsed by cmkit's parser, seconds of CPU), while
another lists environments every 50 ms. Prints the idle latency (the floor), the median and
worst latency during the upload, and the worst as a ratio of the floor. Figures only: nothing
is asserted. The requirements are parsed outside the store's transaction, so the worst case
should stay near the floor instead of the whole parse time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.emulator_support import Emulator, upload_files

MODEL = {"name": "m", "customModelType": "inference", "targetType": "Regression", "targetName": "y"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    lines = parser.parse_args().lines
    with tempfile.TemporaryDirectory() as folder:
        emulator = Emulator(Path(folder) / "data").start()
        try:
            report(emulator, lines)
        finally:
            emulator.stop()
    return 0


def report(emulator: Emulator, lines: int) -> None:
    api, other = emulator.session(), emulator.session()
    model_id = api.post(emulator.url("customModels/"), json=MODEL).json()["id"]
    env_id = emulator.info["environmentId"].encode()
    requirements = b"".join(b"pkg%d==1.0\n" % i for i in range(lines))
    fields = [("isMajorUpdate", (None, b"true")), ("baseEnvironmentId", (None, env_id))]
    files = upload_files({"requirements.txt": requirements, "start_server.sh": b"#!/bin/sh\n"})
    url = emulator.url("executionEnvironments/")

    def timed() -> float:
        started = time.monotonic()
        other.get(url).raise_for_status()
        return time.monotonic() - started

    floor = statistics.median(timed() for _ in range(20))
    outcome: dict[str, float] = {}

    def upload() -> None:
        started = time.monotonic()
        api.post(emulator.url(f"customModels/{model_id}/versions/"), files=fields + files).raise_for_status()
        outcome["seconds"] = time.monotonic() - started

    uploader = threading.Thread(target=upload)
    uploader.start()
    during = []
    while uploader.is_alive():
        during.append(timed())
        time.sleep(0.05)
    uploader.join()
    worst = max(during)
    print(f"requirements.txt: {lines} lines, {len(requirements)} bytes; upload took {outcome['seconds']:.1f} s")
    print(f"GET executionEnvironments/: idle median {floor * 1000:.0f} ms (floor)")
    print(f"during the upload ({len(during)} requests): median {statistics.median(during) * 1000:.0f} ms, ", end="")
    print(f"worst {worst * 1000:.0f} ms = {worst / floor:.0f}x the floor")


if __name__ == "__main__":
    raise SystemExit(main())
