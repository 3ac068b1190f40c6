"""cmkit's stand-in for DataRobot's public `python3_sklearn` drop-in environment, judged by DRUM.

`templates/environments/python3_sklearn` is a rebased stand-in, not DataRobot's image: DataRobot
builds that environment on a private base image; ours is python:3.11-slim with datarobot-drum
and scikit-learn from PyPI, the same start script (`exec drum server`), entrypoint and settings.
Its server is DRUM's own, so it speaks DRUM's prediction protocol (`POST /predict/` with CSV)
and reads DataRobot's container variables (ADDRESS, URL_PREFIX, TARGET_TYPE, labels) as DRUM
does. The DRUM-format bundles of tests/runtime/test_drum_formats.py must get the same verdicts on it as
on cmkit's own python3 environment.

The image installs DRUM (a few minutes): it is built once per test session under its
content-hash tag, and the tests here are few.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.paths import default_environment_dir
from cmkit.testlocal import TestLocalConfig, run_test_local
from tests.conftest import TEST_LABEL, TEST_RUN_ID
from tests.support.bundles import (
    bare_pipeline,
    hooks_only,
    score_crashes_on_nulls,
    score_keeps_state,
    transform_then_classifier,
)
from tests.support.emulator_support import TOKEN, Emulator
from tests.support.lazy import lazy_module
from tests.testlocal.test_samples import run, statuses

dr = lazy_module("datarobot")  # all of this module's tests are slow: the fast tier collects it for nothing

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DROPIN = default_environment_dir().parent / "python3_sklearn"
ALL_SUCCEED = dict.fromkeys(("longRunningService", "errorCheck", "nullValueImputation", "sideEffects"), "succeeded")
# bundle -> the verdict DataRobot gives it (the same table as tests/runtime/test_drum_formats.py)
EXPECTED: dict[str, tuple[Callable[[Path], Path], dict[str, str]]] = {
    "hooks": (hooks_only, ALL_SUCCEED),
    "bare-pipeline": (bare_pipeline, ALL_SUCCEED),
    "transform": (transform_then_classifier, ALL_SUCCEED),
    "crash-on-nulls": (score_crashes_on_nulls, {**ALL_SUCCEED, "nullValueImputation": "warning"}),
    "state-between-calls": (score_keeps_state, {**ALL_SUCCEED, "sideEffects": "warning"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_drum_format_bundles_get_the_same_verdict_on_the_dropin_stand_in(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make, expected = EXPECTED[name]
    bundle = make(tmp_path / name)
    on_dropin = run(bundle, "docker", request, environment=DROPIN, startup_timeout=180)
    on_cmkit = run(bundle, "docker", request)
    assert statuses(on_dropin) == expected, on_dropin["testingStatus"]
    assert statuses(on_cmkit) == expected, on_cmkit["testingStatus"]
    # Each spoke its own protocol, found without being told.
    assert on_dropin["details"]["protocol"]["name"] == "drum"  # type: ignore[index]
    assert on_dropin["details"]["protocol"]["how"] == "X-Drum-Version header"  # type: ignore[index]
    assert on_cmkit["details"]["protocol"]["name"] == "predict_no_state"  # type: ignore[index]


def test_the_stand_in_runs_drum_with_datarobots_variables(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The container DataRobot gives a model: its variables, the environment's entrypoint and start script."""
    request.getfixturevalue("docker_client")
    bundle = bare_pipeline(tmp_path / "m")
    config = TestLocalConfig(
        bundle=bundle, environment=DROPIN, runtime="docker", keep=True, labels={TEST_LABEL: TEST_RUN_ID}
    )
    report = run_test_local(config)
    assert report.server is not None
    try:
        container = report.server.container  # type: ignore[attr-defined]
        variables = dict(
            line.split("=", 1) for line in container.exec_run("env").output.decode().splitlines() if "=" in line
        )
        # PID 1 after the entrypoint's exec chain (`sh -c 'exec ${CODE_DIR}/start_server.sh'`, `exec drum
        # server`): DRUM's own gunicorn server, as MLOPS_RUNTIME_PARAM_DRUM_SERVER_TYPE asks.
        command = container.exec_run(["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]).output.decode()
    finally:
        report.server.stop()
    assert statuses(report.to_dict()) == ALL_SUCCEED, report.to_dict()["testingStatus"]
    assert {key: variables.get(key) for key in ("ADDRESS", "PORT", "CODE_DIR", "URL_PREFIX", "TARGET_TYPE")} == {
        "ADDRESS": "0.0.0.0:8080",
        "PORT": "8080",
        "CODE_DIR": "/opt/code",
        "URL_PREFIX": report.details.url_prefix,
        "TARGET_TYPE": "binary",
    }
    assert (variables["POSITIVE_CLASS_LABEL"], variables["NEGATIVE_CLASS_LABEL"]) == ("malignant", "benign")
    assert variables["TARGET_NAME"] == "diagnosis"  # DataRobot sets it on every model; DRUM needs it for text
    assert "gunicorn" in command and "datarobot_drum" in command, command


TEXTGEN_SCORE = """\
import pandas as pd


def load_model(code_dir):
    return "echo"


def score(data, model, **kwargs):
    return pd.DataFrame({"answer": ["you said: " + str(text) for text in data["promptText"]]})
"""


def test_a_text_generation_model_starts_on_drum_because_target_name_is_set(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # python3_dummy_textgen's shape: DRUM refuses to start such a model without TARGET_NAME.
    bundle = tmp_path / "textgen"
    (bundle / "data").mkdir(parents=True)
    (bundle / "data" / "prompts.csv").write_text("promptText,answer\nhello,hi\nhow are you,fine\n")
    (bundle / "custom.py").write_text(TEXTGEN_SCORE)
    (bundle / "requirements.txt").write_text("")
    (bundle / "model-metadata.yaml").write_text(
        "name: textgen\ntype: inference\ntargetType: textgeneration\ninferenceModel:\n  targetName: answer\n"
        "validation:\n  input: data/prompts.csv\n"
    )
    document = run(bundle, "docker", request, environment=DROPIN, startup_timeout=180)
    assert statuses(document)["longRunningService"] == "succeeded", document["testingStatus"]
    assert statuses(document)["errorCheck"] == "succeeded", document["testingStatus"]


# --- the stand-in on the emulator --------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("dropin") / "data", runtime="docker").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pushed_dropin(emulator: Emulator) -> dict[str, Any]:
    """The stand-in uploaded with `cmkit env push`, built by the emulator (the image cache is shared)."""
    arguments = ["env", "push", str(DROPIN), "--name", "python3_sklearn stand-in", "--json"]
    arguments += ["--endpoint", emulator.endpoint, "--token", TOKEN]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["buildStatus"] == "success", document
    return dict(document)


def test_the_official_client_runs_a_model_test_of_a_drum_bundle_on_the_pushed_stand_in(
    emulator: Emulator, pushed_dropin: dict[str, Any], tmp_path: Path
) -> None:
    dr.Client(endpoint=emulator.endpoint, token=TOKEN)
    bundle = score_crashes_on_nulls(tmp_path / "nulls")
    model = dr.CustomInferenceModel.create(
        name="dropin-nulls", target_type=dr.TARGET_TYPE.REGRESSION, target_name="progression", language="python"
    )
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=pushed_dropin["environmentId"], folder_path=str(bundle)
    )
    dataset = dr.Dataset.create_from_file(file_path=str(bundle / "data" / "test.csv"))
    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=1200)
    status = {name: check["status"] for name, check in test.detailed_status.items()}
    assert status == {
        "long_running_service": "succeeded",
        "error_check": "succeeded",
        "null_value_imputation": "warning",
        "side_effects": "succeeded",
        # The later three checks are not configured in this test: skipped, as DataRobot reports them.
        "prediction_verification_check": "skipped",
        "performance_check": "skipped",
        "stability_check": "skipped",
    }, test.detailed_status
    assert "columns fail when entirely null" in test.detailed_status["null_value_imputation"]["message"]
    assert "X-Drum-Version header" in test.get_log()  # the emulator's engine spoke DRUM's protocol


def test_test_local_builds_the_downloaded_stand_in_by_environment_id(
    emulator: Emulator, pushed_dropin: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = hooks_only(tmp_path / "hooks")
    arguments = ["test-local", str(bundle), "--environment-id", pushed_dropin["environmentId"], "--json"]
    arguments += ["--endpoint", emulator.endpoint, "--token", TOKEN, "--label", f"{TEST_LABEL}={TEST_RUN_ID}"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert statuses(document) == ALL_SUCCEED, document["testingStatus"]
    environment = document["details"]["environment"]
    assert environment["environmentVersionId"] == pushed_dropin["versionId"] and environment["source"] == "flag"
    assert document["details"]["protocol"]["name"] == "drum"


def test_a_version_whose_build_failed_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    broken = tmp_path / "broken-env"
    broken.mkdir()
    (broken / "Dockerfile").write_text("ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\nRUN exit 3\n")
    pushed = CliRunner().invoke(
        main, ["env", "push", str(broken), "--json", "--endpoint", emulator.endpoint, "--token", TOKEN]
    )
    document = json.loads(pushed.stdout)
    assert document["buildStatus"] == "failed", document
    arguments = ["test-local", str(hooks_only(tmp_path / "m")), "--environment-id", document["environmentId"]]
    arguments += ["--environment-version-id", document["versionId"], "--endpoint", emulator.endpoint, "--token", TOKEN]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2 and "its build status is 'failed'" in result.stderr, result.output
