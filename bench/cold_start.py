#!/usr/bin/env python3
"""Comparison: cold start, what a user waits for before the first result (one run each).

The environment image is made new for the run (cmkit's default environment plus a unique line),
and cmkit's cache folder starts empty, so the first `cmkit test-local` is the quick start on a
new machine whose engine holds only the base image:

1. the diabetes sample's first test-local: environment, dependencies (an empty wheel cache:
   everything downloaded), code, checks; then the same again, warm;
2. a second bundle whose requirements.txt names the same packages in another text (uv, the
   shared wheel cache);
3. the same bundle with `--installer pip` (pip from the index inside the image, as DataRobot);
4. a plain `docker build` of the same requirements.txt with `pip install` on the same
   environment image: the naive way, the floor of (2) and (3)'s dependency layer.

Also a fresh `cmkit init` bundle on another new environment image (the README's other quick
start). Figures are wall times of the whole command, and the image build's share (the `build`
duration of `--json`); (2) and (3) are compared with (4) on the build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WORK, Row, python_env, ratio, table
from cmkit.paths import default_environment_dir
from cmkit.scaffold import init_bundle, make_spec

LABEL = "cmkit.bench=cold-start"
SAMPLE = Path(__file__).resolve().parent.parent / "sample_models" / "regression_diabetes"
REWORDED = (
    "# the diabetes sample's packages, in another text\n"
    "threadpoolctl == 3.8.0\nSciPy==1.17.1\nscikit_learn==1.9.1\njoblib==1.6.0\n"
)


def new_environment(root: Path) -> Path:
    """cmkit's default environment with a unique line right after FROM: an image no engine holds
    yet, and no step of it in the builder's cache (its pip install runs as on a new machine)."""
    shutil.copytree(default_environment_dir(), root)
    dockerfile = root / "Dockerfile"
    lines = dockerfile.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("FROM ")) + 1
    lines.insert(at, f"LABEL cmkit.bench.run={uuid.uuid4().hex}\n")
    dockerfile.write_text("".join(lines))
    return root


def test_local(bundle: Path, environment: Path, cache: Path, *extra: str) -> tuple[float, dict[str, object]]:
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--environment", str(environment)]
    command += ["--json", "--label", LABEL, *extra]
    env = {**python_env(), "CMKIT_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    document = json.loads(result.stdout)
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    return seconds, document


def build_seconds(document: dict[str, object]) -> float:
    return float(document["details"]["durations"]["build"])  # type: ignore[index]


def plain_docker_build(image_id: str, requirements: str, folder: Path) -> float:
    """`docker build` of FROM the environment + pip install -r requirements.txt, nothing cached."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(requirements)
    (folder / "Dockerfile").write_text(
        f"FROM {image_id}\nUSER root\nCOPY requirements.txt /tmp/requirements.txt\n"
        "RUN pip install -r /tmp/requirements.txt\n"
    )
    tag = f"cmkit-bench-plain:{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    subprocess.run(
        ["docker", "build", "-q", "--no-cache", "--label", LABEL, "--label", "cmkit=1", "-t", tag, str(folder)],
        check=True,
        capture_output=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    seconds = time.perf_counter() - started
    subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
    return seconds


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(quick: bool = False) -> list[Row]:
    if quick:  # two new environment images and their installs: minutes, not a smoke test
        return [Row("cold start: skipped in --quick (run `bench/run --only cold_start`)", "")]
    root = WORK / "cold-start"
    shutil.rmtree(root, ignore_errors=True)
    cache = root / "cache"
    sample = root / "diabetes"
    shutil.copytree(SAMPLE, sample)
    environment = new_environment(root / "environment")
    load_before = load()

    cold, first = test_local(sample, environment, cache)
    warm, _ = test_local(sample, environment, cache)
    env_image = first["details"]["image"]["environment"]["id"]  # type: ignore[index]

    reworded = root / "reworded"
    shutil.copytree(SAMPLE, reworded)
    (reworded / "requirements.txt").write_text(REWORDED)
    second, second_doc = test_local(reworded, environment, cache)
    by_pip, pip_doc = test_local(reworded, environment, cache, "--installer", "pip")
    plain = plain_docker_build(str(env_image), REWORDED, root / "plain")

    init = root / "init"
    init_bundle(init, make_spec("regression", "bench-cold-start"))
    init_cold, _ = test_local(init, new_environment(root / "environment-init"), root / "cache-init")
    load_after = load()
    shutil.rmtree(root, ignore_errors=True)
    # The run's environments are unique: every image built on them is garbage now.
    prune = [sys.executable, "-m", "cmkit", "prune", "--all", "--label", LABEL, "--json"]
    subprocess.run(prune, capture_output=True, env=python_env(), check=False)
    note = f"load {load_before} -> {load_after}"
    return [
        Row(
            f"cold start (1): diabetes sample, first test-local on a new machine (empty wheel cache; {note})",
            f"{cold:.1f} s",
            "",
            "",
            "<= 15 s",
        ),
        Row("cold start: the same test-local again, warm", f"{warm:.1f} s"),
        Row(
            "cold start (2) vs (4): dependency layer of a 2nd bundle naming the same packages in another text "
            "(build of test-local) vs plain `docker build` with pip install",
            f"{build_seconds(second_doc):.2f} s (test-local {second:.1f} s)",
            f"{plain:.1f} s",
            ratio(build_seconds(second_doc), plain),
            "<= 0.25x",
        ),
        Row(
            "cold start (3) vs (4): the same with `--installer pip` vs plain `docker build`",
            f"{build_seconds(pip_doc):.1f} s (test-local {by_pip:.1f} s)",
            f"{plain:.1f} s",
            ratio(build_seconds(pip_doc), plain),
            "~1x",
        ),
        Row(
            "cold start: a fresh `cmkit init` bundle, first test-local on a new machine",
            f"{init_cold:.1f} s",
            "",
            "",
            "<= 15 s",
        ),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(table(run(options.quick)))
