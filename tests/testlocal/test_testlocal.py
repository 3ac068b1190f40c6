"""cmkit/testlocal.py: configuration, the process runtime's run, start failures, feature impact (fast tier).

Runs start a real `start_server.sh` through the process runtime; the bundle's server is Python's
own http.server (write_quick_bundle, tests/support/bundles.py), so a whole run takes a fraction of
a second. The Docker runtime's build-and-start (`_start_docker`) is the Docker tier's (tests/testlocal/test_docker.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.errors import DockerUnavailable, InputError
from cmkit.events import RecordingEvents
from cmkit.featureimpact import FeatureImpactFailed
from cmkit.resolvedrun import resolve_server
from cmkit.testlocal import TestLocalConfig, resolve_config, run_feature_impact, run_test_local
from tests.support.bundles import write_quick_bundle

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_quick_bundle(tmp_path / "bundle")


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A laptop without Docker: DOCKER_HOST names a socket nothing listens on."""
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)


def test_without_an_engine_the_run_falls_back_to_the_process_runtime_and_says_so(bundle: Path, no_engine: None) -> None:
    metadata = bundle / "model-metadata.yaml"
    metadata.write_text(metadata.read_text() + "environmentID: 0123456789abcdef01234567\n")
    events = RecordingEvents()
    report = run_test_local(TestLocalConfig(bundle, maximum_memory=512 * 1024**2, feature_impact=True), events)

    assert report.overall_status == "succeeded", report.to_dict()["testingStatus"]
    document = report.to_dict()
    details = document["details"]
    assert details["runtime"] == "process"
    assert details["warnings"][0].startswith("model-metadata.yaml names environmentID 0123456789abcdef01234567, but ")
    assert details["warnings"][0].endswith(": using the default environment")
    assert "no Docker engine answers: running start_server.sh as a local process instead" in details["warnings"]
    assert "the process runtime cannot enforce --maximum-memory or --network-egress NONE" in details["warnings"][2]
    assert "== warning: no Docker engine answers: running start_server.sh as a local process instead" in events.lines
    assert details["dataset"] == {"path": str(bundle / "data" / "sample.csv"), "rows": 20}
    assert details["server"]["pid"] > 0 and details["exit"] is None  # it was running when checked
    assert "model loaded" in details["logTail"]
    assert details["peakRssMiB"] > 0 and details["durations"]["total"] > 0
    # Feature impact ran on the same server: the model reads a (weight 1.5) more than b (0.25).
    impact = document["featureImpact"]
    assert impact["status"] == "succeeded" and impact["metric"] == "RMSE"
    assert [item["featureName"] for item in impact["featureImpacts"]] == ["a", "b"]
    assert report.server is None  # stopped: not --keep


def test_a_start_script_that_cannot_be_run_fails_long_running_service(bundle: Path) -> None:
    (bundle / "start_server.sh").chmod(0o644)  # not executable: DataRobot cannot run it either
    report = run_test_local(TestLocalConfig(bundle, runtime="process"))
    statuses = {name: result.status for name, result in report.results.items()}
    assert statuses.pop("longRunningService") == "failed"
    assert set(statuses.values()) == {"aborted"}
    assert report.results["longRunningService"].message.startswith("start_server.sh could not be started: ")
    assert report.details.start is not None and report.details.start.runtime == "process"
    assert report.to_dict()["details"]["runtime"] == "process"


def test_a_bad_dataset_is_the_first_problem_even_when_the_server_cannot_start(bundle: Path) -> None:
    (bundle / "start_server.sh").chmod(0o644)
    (bundle / "data" / "sample.csv").write_text("")
    with pytest.raises(InputError) as found:
        run_test_local(TestLocalConfig(bundle, runtime="process"))
    assert found.value.file is not None and Path(found.value.file).name == "sample.csv"


def test_feature_impact_is_skipped_when_the_model_fails_and_keep_leaves_the_server_up(bundle: Path) -> None:
    import requests

    (bundle / "behaviour.txt").write_text("broken\n")
    checks = {"sideEffects": "skip", "nullValueImputation": "skip"}
    report = run_test_local(TestLocalConfig(bundle, runtime="process", feature_impact=True, checks=checks, keep=True))
    assert report.server is not None
    try:
        assert report.results["errorCheck"].status == "failed"
        assert report.feature_impact is not None
        assert report.feature_impact.to_dict() == {"status": "skipped", "message": "not run: errorCheck failed"}
        assert requests.get(report.server.url + "/", timeout=5).status_code == 200  # still serving
    finally:
        report.server.stop()
    assert report.server.exit_info() is not None
    with pytest.raises(InputError, match="anomaly models have none"):
        resolve_config(TestLocalConfig(bundle, target_type="anomaly", feature_impact=True))


def test_run_feature_impact_fails_on_a_server_that_does_not_start(bundle: Path) -> None:
    (bundle / "behaviour.txt").write_text("crash_at_start\n")
    with pytest.raises(FeatureImpactFailed, match=r"the model server did not start: .*exited with code 3"):
        run_feature_impact(TestLocalConfig(bundle, runtime="process"))
    (bundle / "model-metadata.yaml").write_text("name: quick\ntype: inference\ntargetType: regression\n")
    with pytest.raises(InputError, match="feature impact needs a dataset"):
        run_feature_impact(TestLocalConfig(bundle, runtime="process"))


def test_docker_asked_for_without_an_engine_is_an_error(bundle: Path, no_engine: None) -> None:
    with pytest.raises(DockerUnavailable, match="no Docker engine answers"):
        run_test_local(TestLocalConfig(bundle, runtime="docker"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bundle": Path("/nonexistent/bundle")}, "not a bundle folder"),
        ({"parameters": {"performanceCheck": {"maxResponseTime": "soon"}}}, "bad check parameters"),
        ({"network_egress": "SOME"}, "bad network egress 'SOME'"),
        ({"environment": Path("env"), "image": "python:3.11"}, "give --environment or --image, not both"),
        ({"environment_version_id": "v1"}, "--environment-version-id needs --environment-id"),
        ({"environment_id": "e1", "runtime": "process"}, "--environment-id builds a docker context"),
        ({"protocol": "grpc"}, "unknown protocol 'grpc'"),
        ({"runtime": "podman"}, "unknown runtime 'podman'"),
        ({"target_type": "binary"}, "positive"),
    ],
)
def test_bad_configurations_are_refused_before_anything_starts(bundle: Path, changes: dict, message: str) -> None:
    config = TestLocalConfig(bundle)
    for name, value in changes.items():
        setattr(config, name, value)
    with pytest.raises(InputError, match=message):
        resolve_config(config)


def test_a_bundle_without_a_target_type_needs_one_unless_it_is_only_served(bundle: Path) -> None:
    (bundle / "model-metadata.yaml").write_text("name: quick\ntype: inference\n")
    with pytest.raises(InputError, match="no target type") as found:
        resolve_config(TestLocalConfig(bundle))
    assert "--target-type" in (found.value.hint or "")
    assert resolve_server(TestLocalConfig(bundle, runtime="process")).contract == {}  # no TARGET_TYPE for it
