#!/usr/bin/env python3
"""How fast hostile input is refused, against the floor of linting a clean bundle in the same run.

The figures behind issue 13's "one line, exit 2, in well under a second": an alias bomb (9**9
scalars once expanded, from 400 bytes), YAML nested 30,000 deep, `/dev/zero` given to `deps`,
and, as the honest upper bound, a legitimate model-metadata.yaml just under the size cap.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, median_seconds
from cmkit.errors import InputError
from cmkit.lint import lint_bundle
from cmkit.metadata import load_metadata
from cmkit.requirements import parse_requirements_file
from cmkit.safeyaml import MAX_YAML_BYTES

METADATA = "name: m\ntype: inference\ntargetType: regression\n"
BOMB = (
    'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    + "name: bomb\n"
)
DEEP = "name: [" + "[" * 30_000 + "]" * 30_000 + "]\n"  # 60 KB: within the size cap, refused for depth


def bundle(root: Path, metadata: str) -> Path:
    root.mkdir()
    script = root / "start_server.sh"
    script.write_text("#!/bin/sh\nexec python -m server\n")
    script.chmod(0o755)
    (root / "requirements.txt").write_text("numpy==2.0\n")
    (root / "model-metadata.yaml").write_text(metadata)
    return root


def near_cap() -> str:
    parameters = "".join(f"  - fieldName: p{i}\n    type: string\n" for i in range(10_000))
    text = METADATA + "runtimeParameterDefinitions:\n" + parameters
    return text[: text.rfind("\n  - ", 0, MAX_YAML_BYTES - 1)] + "\n"


def refused(action: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except InputError:
            return
        raise AssertionError("the input was accepted")

    return run


def run(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 15
    with tempfile.TemporaryDirectory(prefix="cmkit-bench-hostile-") as folder:
        root = Path(folder)
        clean = bundle(root / "clean", METADATA)
        bomb, deep = bundle(root / "bomb", BOMB), bundle(root / "deep", DEEP)
        big_text = near_cap()
        big = bundle(root / "big", big_text)
        floor = median_seconds(lambda: lint_bundle(clean), repeats)
        cases: dict[str, Callable[[], object]] = {
            "alias bomb in model-metadata.yaml: lint": lambda: lint_bundle(bomb),
            "YAML nested 30,000 deep: lint": lambda: lint_bundle(deep),
            "`cmkit deps /dev/zero`: refused": refused(lambda: parse_requirements_file("/dev/zero")),
            f"legitimate model-metadata.yaml of {len(big_text):,} bytes (near the cap): read": lambda: load_metadata(
                big
            ),
        }
        rows = [Row("lint of a clean bundle (the floor)", f"{floor * 1000:.2f} ms")]
        for figure, action in cases.items():
            seconds = median_seconds(action, repeats)
            ratio = f"{seconds / floor:.1f}x"
            rows.append(Row(figure, f"{seconds * 1000:.2f} ms", f"{floor * 1000:.2f} ms", ratio, "< 1 s"))
        rows += round_three(root, quick)
        return rows


def measured(action: Callable[[], object], traced: Callable[[], object] | None = None) -> tuple[float, float]:
    """Seconds of one call, and the peak MiB allocated (tracemalloc, which slows what it traces:
    a second call, of `traced` when given) of another."""
    began = time.perf_counter()
    action()
    seconds = time.perf_counter() - began
    tracemalloc.start()
    try:
        (traced or action)()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return seconds, peak


def round_three(root: Path, quick: bool) -> list[Row]:
    """Issue 27's items 5, 7, 9 and 1, each against the figure the audit measured on main 6dd0c1e."""
    from cmkit.checks.datasetfile import check_csv
    from cmkit.engine.base import RunSpec
    from cmkit.engine.process import start_process
    from cmkit.requirements import parse_requirements_text

    rows = []
    lines = 6_000 if quick else 60_000
    text = "".join(f"p{i}==1.{i % 10}\n" for i in range(lines))  # the audit's shape: 60,000 in 660 KiB
    seconds, peak = measured(lambda: parse_requirements_text(text))
    rows.append(
        Row(
            f"requirements.txt of {lines:,} lines ({len(text) // 1024} KiB): parse",
            f"{seconds:.2f} s, {peak:.0f} MiB",
            "> 10 s (60,000 lines, audit)",
            "",
            "linear",
        )
    )
    wide = root / "wide.csv"
    wide.write_text(",".join(f"column{i}" for i in range(1_000_000)) + "\n1\n")
    seconds, peak = measured(refused(lambda: check_csv(wide)))  # twice: the check reads only the header
    rows.append(
        Row(
            "test CSV with a 1,000,000-column header: refused",
            f"{seconds * 1000:.0f} ms, {peak:.0f} MiB",
            "94 s, 3.2 GB (audit)",
            "",
            "< 1 s",
        )
    )
    mib = 20 if quick else 200
    script = f"#!/bin/sh\nyes 'a line of model output' | head -c {mib * 2**20}\necho last\n"
    (root / "chatty").mkdir()
    (root / "chatty" / "start_server.sh").write_text(script)
    (root / "chatty" / "start_server.sh").chmod(0o755)
    server = start_process(root / "chatty", RunSpec(url_prefix="/"))
    server.process.wait(timeout=120)
    tracemalloc.start()  # one traced call: the stop happens once (it keeps the log's tail)
    began = time.perf_counter()
    server.logs(40)
    server.stop()
    seconds, peak = time.perf_counter() - began, tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rows.append(
        Row(
            f"process runtime, a model printing {mib} MiB: its log read and the server stopped",
            f"{seconds * 1000:.0f} ms, {peak:.0f} MiB",
            "913 MiB of cmkit (audit)",
            "",
            "bounded",
        )
    )
    rows.append(flooded_ping(root))
    return rows


def flooded_ping(root: Path) -> Row:
    """A token holder's `GET ping/` while 300 connections never finish their headers (item 1)."""
    import json
    import socket
    import subprocess

    import requests

    command = [sys.executable, "-m", "cmkit", "emulator", "--json", "--port", "0", "--runtime", "process"]
    command += ["--data-dir", str(root / "emulator"), "--token", "bench-token"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    flood: list[socket.socket] = []
    try:
        assert process.stdout is not None
        endpoint = json.loads(process.stdout.readline())["endpoint"]
        host, port = endpoint.removeprefix("http://").split("/")[0].split(":")
        for _ in range(300):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n")
            flood.append(sock)
        began = time.perf_counter()
        answer = requests.get(endpoint + "ping/", headers={"Authorization": "Bearer bench-token"}, timeout=30)
        seconds = time.perf_counter() - began
        shown = f"{seconds * 1000:.0f} ms (HTTP {answer.status_code})"
    except requests.RequestException as exc:
        shown = f"no answer ({exc.__class__.__name__})"
    finally:
        for sock in flood:
            sock.close()
        process.terminate()
        process.wait(timeout=30)
    return Row(
        "emulator: a token holder's ping under 300 unfinished connections",
        shown,
        "no answer in 10 s and more (100 connections, audit)",
        "",
        "answered",
    )


if __name__ == "__main__":
    from bench.common import table

    print(table(run("--quick" in sys.argv)))
