"""`cmkit serve`, `--watch` and `cmkit predict` on R models (custom.R hooks, an .rds), in both runtimes.

The model is an `lm` trained by R in the test (tests/support/rmodels.py); the expected numbers are
R's own `predict()` on the test rows. Under `serve --watch` an edit of custom.R and a replaced .rds
each reach the running server: the next predictions are the new code's and the new model's. A
real watch (watchfiles) of a real server: the runtime's workers reload (SIGHUP), in the process
runtime from the bundle folder and in Docker after the files are synced into the container.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from cmkit.checks.results import ERROR_CHECK
from cmkit.cli import main
from cmkit.events import Events
from cmkit.testlocal import TestLocalConfig
from cmkit.watch import STARTED, Serving, Watch
from tests.conftest import TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import write_files
from tests.support.rmodels import build_r_models, require_r
from tests.testlocal.test_watch import WATCH_TIMEOUT, break_then_fix, edit, run_watch

pytestmark = pytest.mark.slow
RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]
R_WATCH_TIMEOUT = 4 * WATCH_TIMEOUT
SCORE = """\
SCALE <- {scale}

score <- function(data, model, labels) {{
  data.frame(Predictions = SCALE * stats::predict(model, data))
}}
"""
# The same lm with every coefficient tripled: predict() gives three times the first model's numbers.
TRIPLE = (
    "paths <- commandArgs(TRUE); m <- readRDS(paths[[1]]); m$coefficients <- 3 * m$coefficients; saveRDS(m, paths[[2]])"
)


@pytest.fixture(scope="module")
def r_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_r_models(tmp_path_factory.mktemp("r-models"))


def scored_bundle(r_models: Path, folder: Path) -> Path:
    source = r_models / "lm_rds"
    return write_files(
        folder,
        {
            "model.rds": (source / "model.rds").read_bytes(),
            "custom.R": SCORE.format(scale=1),
            "model-metadata.yaml": (source / "model-metadata.yaml").read_text(),
        },
    )


def tripled(rds: Path, into: Path) -> bytes:
    subprocess.run([require_r(), "--vanilla", "-e", TRIPLE, str(rds), str(into)], check=True, timeout=120)
    return into.read_bytes()


def replace_file(path: Path, content: bytes) -> None:
    """A new model saved over the old as a tool does: written beside it, renamed over it (one event)."""
    draft = path.parent.parent / f".{path.name}.draft"
    draft.write_bytes(content)
    os.replace(draft, path)


def rows_and_expected(r_models: Path) -> tuple[dict[str, list[Any]], np.ndarray]:
    data = pd.read_csv(r_models / "lm_rds" / "data" / "test.csv")
    expected = pd.read_csv(r_models / "lm_rds" / "data" / "expected.csv")["Predictions"].to_numpy(float)
    return {name: data[name].tolist() for name in data.columns}, expected


def config_for(bundle: Path, runtime: str, request: pytest.FixtureRequest, **options: Any) -> TestLocalConfig:
    if runtime == "docker":
        request.getfixturevalue("docker_client")  # skip (or fail in CI) without an engine
    return TestLocalConfig(bundle, runtime=runtime, labels={TEST_LABEL: TEST_RUN_ID}, startup_timeout=180, **options)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_serve_watch_brings_a_custom_r_edit_and_a_new_rds_to_the_predictions(
    runtime: str, r_models: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))  # serve's note for `cmkit predict`
    bundle = scored_bundle(r_models, tmp_path / "lm")
    new_model = tripled(bundle / "model.rds", tmp_path / "tripled.rds")
    rows, expected = rows_and_expected(r_models)
    stop = threading.Event()
    watch = Watch(config_for(bundle, runtime, request), Events(), stop, serve_only=True)
    served: list[dict[str, Any]] = []
    predicted: list[np.ndarray] = []

    def on_ready(serving: Serving) -> None:
        served.append(serving.to_dict())
        if serving.ready and serving.url:
            answer = requests.post(serving.url + "predict_no_state/", json={"X": rows}, timeout=60)
            predicted.append(np.asarray(answer.json()["predictions"], float) if answer.ok else np.array([]))
        if len(served) == 1:
            edit(bundle / "custom.R", SCORE.format(scale=2))
        elif len(served) == 2:
            replace_file(bundle / "model.rds", new_model)
        else:
            stop.set()

    # Three R servers start in turn (in Docker: a code image each): 58-70 s on a loaded CI worker.
    run_watch(lambda: watch.serve(on_ready, pytest.fail), stop, timeout=R_WATCH_TIMEOUT)

    assert [s["ready"] for s in served] == [True, True, True], served
    assert served[0]["watch"]["action"] == STARTED
    assert [s["watch"].get("changed") for s in served[1:]] == [["custom.R"], ["model.rds"]], served
    assert len(predicted) == 3
    np.testing.assert_allclose(predicted[0], expected, rtol=1e-12, atol=1e-12)  # R's own predict()
    np.testing.assert_allclose(predicted[1], 2 * expected, rtol=1e-9)  # the edited score()
    np.testing.assert_allclose(predicted[2], 6 * expected, rtol=1e-9)  # the edited score() on the new .rds


def test_test_local_watch_fails_a_broken_custom_r_and_passes_it_fixed(
    r_models: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = scored_bundle(r_models, tmp_path / "lm")
    broken = (bundle / "custom.R").read_text() + '\nscore <- function(data, model, labels) stop("broken on purpose")\n'
    dataset = r_models / "lm_rds" / "data" / "labelled.csv"
    config = config_for(bundle, "process", request, dataset=dataset, checks={"nullValueImputation": "skip"})
    runs = break_then_fix(config, bundle / "custom.R", broken)
    first, failed, fixed = (run.report.results[ERROR_CHECK] for run in runs)
    assert (first.status, failed.status, fixed.status) == ("succeeded", "failed", "succeeded")
    assert "R: Error in score(data, model, labels) : broken on purpose" in failed.message


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predict_writes_rs_own_predictions(
    runtime: str, r_models: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_client")
    bundle = scored_bundle(r_models, tmp_path / "lm")
    output = tmp_path / "predictions.csv"
    arguments = ["predict", str(bundle), "--input", str(r_models / "lm_rds" / "data" / "test.csv")]
    arguments += ["--output", str(output), "--runtime", runtime, "--no-reuse", "--json"]
    arguments += ["--label", f"{TEST_LABEL}={TEST_RUN_ID}", "--startup-timeout", "180"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    _, expected = rows_and_expected(r_models)
    np.testing.assert_allclose(pd.read_csv(output)["Predictions"].to_numpy(float), expected, rtol=1e-12, atol=1e-12)
