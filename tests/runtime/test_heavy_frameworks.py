"""python3_pytorch and python3_keras: a `.pth` module and an `.h5` model served as DRUM serves them.

torch (135 s, 5.5 GB with the CUDA libraries PyPI's wheel pulls: the CPU-only index is not
reachable) and tensorflow-cpu (40 s, 1.6 GB) stay out of cmkit's dev extra; these tests add
them to DRUM's virtualenv (bench/common.py, drum_with, cached by a marker) and run cmkit's runtime
from that Python: the bundle's start_server.sh starts `cmkit_runtime` with it, and
`--runtime process` puts this checkout's runtime on its PYTHONPATH. Each bundle must pass
test-local and predict what `drum score` predicts within 1e-6 (relative for float32 values).
The Keras model also passes in Docker, TensorFlow installed from its requirements.txt; PyTorch
does not run in Docker here (docs/runtime.md has the measurements and the decision).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.common import drum_with
from tests.runtime.test_frameworks import LABELS, served_predictions
from tests.support.bundles import DIABETES, IRIS
from tests.support.drum import drum_score
from tests.testlocal.test_samples import run, statuses

BUILDER = Path(__file__).resolve().parents[1] / "support" / "heavy_models.py"
FRAMEWORKS = {"torch": "torch==2.14.1", "keras": "tensorflow-cpu==2.21.0"}
SAMPLES = {"regression": DIABETES, "multiclass": IRIS}
START = '#!/bin/sh\nexec {python} -m cmkit_runtime serve --code-dir "$(dirname "$0")"\n'


def heavy_bundle(framework: str, target_type: str, folder: Path) -> Path:
    venv = drum_with(FRAMEWORKS[framework])
    python = venv / "bin" / "python"
    build = [str(python), str(BUILDER), framework, target_type, str(SAMPLES[target_type]), str(folder)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    script = folder / "start_server.sh"
    script.write_text(START.format(python=python))
    script.chmod(0o755)
    return folder


CASES = [("torch", "regression"), ("torch", "multiclass"), ("keras", "regression"), ("keras", "multiclass")]


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "target_type"), CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_heavy_template_passes_test_local_and_predicts_as_drum(
    framework: str, target_type: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = heavy_bundle(framework, target_type, tmp_path / "model")
    # isolate=False: the start script runs DRUM's venv (with the framework) on purpose, not a venv
    # of the bundle's requirements that would install torch or TensorFlow again.
    document = run(bundle, "process", request, atol=1e-6, isolate=False)  # float32 models: see test_frameworks.py
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
    data = pd.read_csv(bundle / "data" / "test.csv")
    ours = served_predictions(bundle, data, target_type, tmp_path / "server.log")
    theirs = drum_score(bundle, bundle / "data" / "test.csv", target_type, LABELS.get(target_type, ()))
    assert list(theirs.columns) == list(ours.columns)
    np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=1e-6, atol=1e-6)


@pytest.mark.docker
@pytest.mark.slow
def test_keras_template_passes_in_docker_with_tensorflow_in_its_requirements(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The .h5 served by cmkit's python3 environment, TensorFlow installed into the dependency
    # layer from the bundle's requirements.txt (tensorflow-cpu, from the shared wheel cache).
    # Measured: a 1.46 GB layer, 58 s to build, 87 s for the first run, 35 s warm (docs/runtime.md).
    # PyTorch stays out of Docker: PyPI's wheel brings 5.5 GB of CUDA libraries.
    venv = drum_with(FRAMEWORKS["keras"])
    folder = tmp_path / "model"
    build = [str(venv / "bin" / "python"), str(BUILDER), "keras", "regression", str(DIABETES), str(folder)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (folder / "requirements.txt").read_text().strip() == FRAMEWORKS["keras"]
    document = run(folder, "docker", request, atol=1e-6, startup_timeout=600)  # float32 model
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]
    assert document["details"]["runtime"] == "docker"  # type: ignore[index]
