"""Shared pieces of the benchmarks: DRUM's own virtualenv, timing, load generation, the table.

Every comparison runs both sides on this machine in the same run, with the same model, data and
worker count, warms up, repeats, and reports medians and ratios. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
DRUM_VERSION = "1.18.1"
# The label each comparison that builds Docker images gives them (`--label cmkit.bench=NAME`).
BENCH_IMAGES = ("edit-loop", "watch", "full-suite", "cold-start")


@dataclass
class Row:
    """One figure of the final table."""

    figure: str
    cmkit: str
    other: str = ""
    ratio: str = ""
    target: str = ""
    # A lead this figure keeps over DRUM, as a number (higher is better): bench/guard.py holds it
    # to the committed baseline. Only figures that a loaded machine does not move belong here.
    lead: float | None = None

    def markdown(self) -> str:
        return f"| {self.figure} | {self.cmkit} | {self.other} | {self.ratio} | {self.target} |"


def table(rows: Sequence[Row]) -> str:
    lines = ["| figure | cmkit | DRUM or floor | ratio | target |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(lines + [row.markdown() for row in rows])


def write_section(path: Path, run: str, text: str) -> None:
    """Replace the section of a markdown file that `run` (a command line) wrote last time, or append one.

    The section sits between two HTML comments naming the run, so a table in the docs is always
    a run's own output, rewritten by the next run of the same command line.
    """
    begin, end = f"<!-- generated: {run} -->", f"<!-- end generated: {run} -->"
    section = f"{begin}\n{text.strip()}\n{end}"
    document = path.read_text()
    if begin in document and end in document:
        document = document[: document.index(begin)] + section + document[document.index(end) + len(end) :]
    else:
        document = document.rstrip("\n") + f"\n\n### `{run}`\n\n{section}\n"
    path.write_text(document)


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        memory_kb = int(handle.readline().split()[1])
    docker = shutil.which("docker")
    engine = ""
    if docker:
        probe = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
        engine = f", Docker engine {probe.stdout.strip() or 'not running'}"
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {memory_kb / 1024**2:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}{engine}"
    )


def load_average() -> str:
    """The machine's load (1, 5 and 15 minutes), said with every figure: the machine may be shared."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group.

    A server's CPU per request does not depend on what else the machine runs, unlike its
    throughput: the bench's guarded figures are built on it.
    """
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if int(fields[2]) == group:  # pgrp; then utime and stime at 11 and 12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def median_seconds(action: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def wait_http(url: str, timeout: float = 120.0, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


@contextmanager
def server_process(
    command: Sequence[str], env: dict[str, str], ready_url: str, cwd: Path | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group, wait until it answers, end the group afterwards."""
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_http(ready_url, process=process)
        yield process
    finally:
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait()
        if log:
            output.close()  # type: ignore[union-attr]


def prune_bench_images() -> None:
    """Remove the containers and images the comparisons labelled: a run leaves nothing in the engine."""
    for name in BENCH_IMAGES:
        prune = [sys.executable, "-m", "cmkit", "prune", "--all", "--label", f"cmkit.bench={name}", "--json"]
        subprocess.run(prune, capture_output=True, env=python_env(), check=False)


def python_env() -> dict[str, str]:
    """This interpreter's bin first on PATH: what `--runtime process` gives a bundle."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


# --- DRUM ---------------------------------------------------------------------------------------


@contextmanager
def drum_venv_lock(shared: bool = False) -> Iterator[None]:
    """DRUM's virtualenv is one folder for every process that runs DRUM (bench/run, and the test
    suite's two xdist workers): exclusive while it is made or a framework added, shared while a
    `drum` command runs from it, so no install swaps a package under a running one."""
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / ".drum-venv.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _made_once(marker: Path, make: Callable[[], object]) -> None:
    """`make()` then `marker`, unless the marker is there: checked again under the lock, since
    another process may have made it while this one waited."""
    if marker.exists():
        return
    with drum_venv_lock():
        if not marker.exists():
            make()
            marker.touch()


def drum_venv() -> Path:
    """A virtualenv with DRUM and this environment's scikit-learn; never a project dependency."""
    venv = WORK / "drum-venv"
    sklearn = metadata.version("scikit-learn")

    def make() -> None:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"datarobot-drum=={DRUM_VERSION}",
                f"scikit-learn=={sklearn}",
                f"joblib=={metadata.version('joblib')}",
            ],
            check=True,
        )

    _made_once(venv / f".ready-drum-{DRUM_VERSION}-sklearn-{sklearn}", make)
    return venv


def drum_with(*packages: str) -> Path:
    """DRUM's virtualenv with model frameworks added, at this environment's version or pinned (one marker each)."""
    venv = drum_venv()
    for package in packages:
        # A framework this environment does not have (torch, tensorflow) comes pinned by the caller.
        pinned = package if "==" in package else f"{package}=={metadata.version(package)}"
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", pinned]
        _made_once(venv / f".ready-{pinned}", functools.partial(subprocess.run, pip, check=True))
    return venv


def drum_version(venv: Path) -> str:
    probe = subprocess.run([str(venv / "bin" / "drum"), "--version"], capture_output=True, text=True)
    return (probe.stdout or probe.stderr).strip().splitlines()[-1] if (probe.stdout or probe.stderr) else "?"


DRUM_HOOKS = '''"""DRUM hooks around the same model code cmkit serves (bundle_custom.py is the bundle's custom.py)."""
import os
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundle_custom  # noqa: E402


def load_model(code_dir):
    return bundle_custom.load_model(code_dir)


def score(data, model, **kwargs):
    return pd.DataFrame({"Predictions": bundle_custom.predict(model, data)})
'''


def drum_code_dir(bundle: Path, target: Path) -> Path:
    """A DRUM code dir running exactly the bundle's load_model/predict."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        bundle,
        target,
        ignore=shutil.ignore_patterns(
            "start_server.sh", "server.py", "gunicorn.conf.py", "model-metadata.yaml", "requirements.txt"
        ),
    )
    (target / "custom.py").rename(target / "bundle_custom.py")
    (target / "custom.py").write_text(DRUM_HOOKS)
    return target


# --- load generation ----------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
wrk.body = {body}
"""


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_seconds: float = 0.0  # the server's, over the run (group_cpu_seconds)

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else float("nan")


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str,
    body: bytes,
    content_type: str,
    connections: int = 8,
    seconds: float = 10.0,
    server_group: int | None = None,
) -> Load:
    """Keep-alive load from `connections` concurrent clients (wrk, a C load generator).

    With `server_group` (the server's process group), the server's CPU over the run too."""
    if shutil.which("wrk") is None:
        raise RuntimeError("bench needs wrk: apt-get install wrk")
    WORK.mkdir(parents=True, exist_ok=True)
    script = WORK / "post.lua"
    script.write_text(WRK_SCRIPT.format(content_type=content_type, body=json.dumps(body.decode())))
    probe = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)
    probe.raise_for_status()
    cpu_before = group_cpu_seconds(server_group) if server_group else 0.0
    result = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu = group_cpu_seconds(server_group) - cpu_before if server_group else 0.0
    output = result.stdout
    requests_done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # Anchored: "80.50%" in the thread stats must not pass for the 50th percentile.
    p50 = _milliseconds(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _milliseconds(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return Load(rps, p50, p99, errors, requests_done, cpu)


def script_main(run: Callable[[bool], list[Row]], description: str | None) -> None:
    """A comparison run as a script: `--quick`, and `--json` for its rows as JSON instead of the table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = run(options.quick)
    print(json.dumps([row.__dict__ for row in results], indent=2) if options.json else table(results))
