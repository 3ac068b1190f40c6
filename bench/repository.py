#!/usr/bin/env python3
"""A repository of small models tested at once: `test-local --all --jobs 2` against one after another.

Issue 28's goal: near 2x on 2 cores with the process runtime. The repository is generated:
`cmkit init` models (cmkit's runtime, a real gunicorn server and a JSON linear model each, half
of them described by one models.yaml of the GitHub Action, half plain bundles). Three ways to
test it, each timed on the wall clock, in the same run:

- a loop of `cmkit test-local BUNDLE`, one process per model (what a CI script does today);
- `cmkit test-local --all --jobs 1` (one process, one model after another);
- `cmkit test-local --all --jobs 2` (two worker processes on the one engine).

The ratios are the loop's and --jobs 1's time over --jobs 2's. Every run must pass (a failed
model would make a fast run meaningless). The machine's load is printed before and after: on a
shared machine the other processes take the cores the second job needs.

    python bench/repository.py [--models 20] [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row, load_average, machine, ratio, table, write_section  # noqa: E402

ENV = "5e8c889607389fe0f466c72d"
CMKIT = [sys.executable, "-m", "cmkit"]
DOCS = ROOT / "docs" / "benchmarks.md"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def generate(root: Path, count: int) -> list[Path]:
    """`count` models from `cmkit init`: the first half listed in models.yaml, the rest plain bundles."""
    folders = []
    entries = []
    for index in range(count):
        folder = root / "models" / f"model_{index:02d}"
        subprocess.run(
            [*CMKIT, "init", str(folder), "--target-type", "regression"], env=_env(), check=True, capture_output=True
        )
        folders.append(folder)
        if index < count // 2:
            entries.append(
                f"  - model_path: model_{index:02d}\n    model_metadata:\n"
                f"      user_provided_model_id: model-{index:02d}\n      target_type: Regression\n"
                f"      settings: {{name: model {index}, target_name: price}}\n"
                f"      version: {{model_environment_id: {ENV}}}\n"
            )
    (root / "models" / "models.yaml").write_text("datarobot_models:\n" + "".join(entries))
    return folders


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0  # user + system seconds of the command and every process it waited for (servers)

    def add(self, other: Timing) -> None:
        self.wall += other.wall
        self.cpu += other.cpu

    @property
    def cores(self) -> str:
        """How many cores the command kept busy on average: what the machine let it have."""
        return f"{self.cpu / self.wall:.2f} cores busy" if self.wall else ""


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1's CPU accounting, where the machine has it


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[Timing, subprocess.CompletedProcess[str]]:
    """The command's wall time and CPU time, its servers' and workers' included.

    A cgroup counts every descendant, also those nobody waits for (--jobs's fork server and its
    workers, which the rusage of waited children misses); without one, the rusage is the figure.
    """
    group = CPUACCT / f"cmkit-bench-{os.getpid()}"
    try:
        group.mkdir()
    except OSError:
        group = None  # type: ignore[assignment]

    def enter() -> None:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    began, cpu = time.perf_counter(), _children_cpu()
    try:
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, check=False, preexec_fn=enter)
        wall = time.perf_counter() - began
        if group is not None:
            time.sleep(0.5)  # the fork server ends when its parent has: let it
            used = int((group / "cpuacct.usage").read_text()) / 1e9
            for pid in (group / "cgroup.procs").read_text().split():  # nothing should be left; never leave it
                os.kill(int(pid), 9)
        else:
            used = _children_cpu() - cpu
    finally:
        if group is not None:
            time.sleep(0.1)
            group.rmdir()
    return Timing(wall, used), done


def _require(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def run(quick: bool = False, models: int = 20) -> list[Row]:
    count = 4 if quick else models
    with tempfile.TemporaryDirectory(prefix="cmkit-bench-repo-") as folder:
        root = Path(folder)
        bundles = generate(root, count)
        common = ["--runtime", "process"]
        # Warm-up: the page cache, cmkit's and the runtime's imports compiled.
        _require(timed([*CMKIT, "test-local", str(bundles[0]), *common])[1], "warm-up")
        load_before = load_average()
        loop = Timing()
        for bundle in bundles:
            seconds, done = timed([*CMKIT, "test-local", str(bundle), *common])
            _require(done, f"test-local {bundle.name}")
            loop.add(seconds)
        one, done_one = timed([*CMKIT, "test-local", "--all", str(root), "--jobs", "1", "--json", *common])
        _require(done_one, "--all --jobs 1")
        two, done_two = timed([*CMKIT, "test-local", "--all", str(root), "--jobs", "2", "--json", *common])
        _require(done_two, "--all --jobs 2")
        load_after = load_average()
        summary = json.loads(done_two.stdout)["summary"]
        assert summary == {"succeeded": count, "failed": 0, "error": 0}, summary
    load = f"load {load_before} before, {load_after} after"
    return [
        Row(
            f"{count} models, a loop of `cmkit test-local BUNDLE`",
            f"{loop.wall:.1f} s ({loop.cpu:.1f} CPU s, {loop.cores})",
        ),
        Row(
            f"{count} models, `--all --jobs 1`",
            f"{one.wall:.1f} s ({one.cpu:.1f} CPU s, {one.cores})",
            f"{loop.wall:.1f} s (the loop)",
            ratio(loop.wall, one.wall),
        ),
        Row(
            f"{count} models, `--all --jobs 2` ({load})",
            f"{two.wall:.1f} s ({two.cpu:.1f} CPU s, {two.cores})",
            f"{one.wall:.1f} s (--jobs 1)",
            ratio(one.wall, two.wall),
            "near 2x on 2 cores",
        ),
        Row(
            f"{count} models, `--all --jobs 2` against the loop",
            f"{two.wall:.1f} s",
            f"{loop.wall:.1f} s",
            ratio(loop.wall, two.wall),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="4 models: proves the script works")
    parser.add_argument("--write-docs", action="store_true", help="(re)write this run's section of docs/benchmarks.md")
    args = parser.parse_args()
    if shutil.which("git") is None:
        raise SystemExit("needs git")
    rows = run(args.quick, args.models)
    text = f"{machine()}; {os.cpu_count()} CPUs\n\n{table(rows)}"
    print(text)
    if args.write_docs:
        write_section(DOCS, "python bench/repository.py" + (" --quick" if args.quick else ""), text)


if __name__ == "__main__":
    main()
