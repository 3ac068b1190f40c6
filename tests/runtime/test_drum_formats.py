"""DataRobot's DRUM-format models, run unchanged by cmkit's runtime through `cmkit test-local`.

The bundles (tests/support/bundles.py, write_drum_bundle) are written from DRUM's public
documentation of its hooks (`init`, `load_model`, `transform`, `score` returning a DataFrame,
`post_process`) and of its artifact path (one pickled scikit-learn object, predicted through
predict / predict_proba with the classes mapped to the labels). None has a start script: the environment provides it, as
DataRobot's drop-in environments do. Each runs in both runtimes and gets the verdict DataRobot
would give.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from cmkit.lint import lint_bundle
from tests.support.bundles import (
    bare_pipeline,
    hooks_only,
    score_crashes_on_nulls,
    score_keeps_state,
    transform_then_classifier,
    unknown_artifact,
)
from tests.support.serving import serve
from tests.testlocal.test_samples import RUNTIMES, run, statuses

GOOD_BUNDLES = [hooks_only, bare_pipeline, transform_then_classifier]


@pytest.mark.slow  # the bundles are built from the scikit-learn samples: 1.1 s to import scikit-learn
@pytest.mark.parametrize("make", GOOD_BUNDLES, ids=lambda f: f.__name__)
def test_drum_bundles_lint_clean_without_a_start_script(make: object, tmp_path: Path) -> None:
    report = lint_bundle(make(tmp_path / "m"))  # type: ignore[operator]
    assert report.ok and [f.rule for f in report.findings] == ["start-script-provided"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("make", GOOD_BUNDLES, ids=lambda f: f.__name__)
def test_drum_format_models_pass(make: object, runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    document = run(make(tmp_path / "m"), runtime, request)  # type: ignore[operator]
    assert set(statuses(document).values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("make", "check", "fragment"),
    [
        (score_crashes_on_nulls, "nullValueImputation", "columns fail when entirely null"),
        (score_keeps_state, "sideEffects", "rows differ when predicted alone"),
    ],
    ids=["crash-on-nulls", "state-between-calls"],
)
def test_drum_format_faults_get_datarobots_verdict(
    make: object, check: str, fragment: str, runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = run(make(tmp_path / "m"), runtime, request)  # type: ignore[operator]
    found = document["testingStatus"][check]  # type: ignore[index]
    assert found["status"] == "warning" and fragment in found["message"], document["testingStatus"]
    others = {name: status for name, status in statuses(document).items() if name != check}
    assert set(others.values()) == {"succeeded"}, document["testingStatus"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_artifact_the_runtime_cannot_load_fails_at_once_naming_it(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    document = run(unknown_artifact(tmp_path / "m"), runtime, request, startup_timeout=300)
    service = document["testingStatus"]["longRunningService"]  # type: ignore[index]
    assert service["status"] == "failed"
    assert "exited with code 4" in service["message"]
    assert "model.jar: a Java model: DataRobot runs it in its Java drop-in environment" in service["message"]
    # At once, not after the 300 s startup timeout.
    assert document["details"]["checks"]["longRunningService"]["seconds"] < 60  # type: ignore[index]


@pytest.mark.slow
def test_info_names_the_format_the_hooks_and_the_target(tmp_path: Path) -> None:
    bundle = transform_then_classifier(tmp_path / "m")
    with serve(bundle, tmp_path / "server.log", prefix="/p") as server:
        info = requests.get(server.url("/info/"), timeout=5).json()
    assert info["modelFormat"] == "artifact" and info["hooks"] == ["transform"] and info["artifact"] == "model.pkl"
    assert info["targetType"] == "multiclass" and len(info["classLabels"]) == 3
    assert info["runtime"] == "cmkit-runtime" and info["loaded"] is True
    assert "model format artifact (hooks: transform, artifact model.pkl)" in server.log()
