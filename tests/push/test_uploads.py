"""Uploads: `push` carrying out a plan against the emulator's app on a real loopback socket (fast
tier): dependency builds, datasets, remote model tests, and the retries and look-ups around creates.

The remote test really runs: the emulator's process runtime starts the pushed bundle's
start_server.sh (write_stdlib_bundle, a standard-library server) and runs test-local's
checks on it. Faults come from the emulator's own injector (503s with `Retry-After: 0`). The
client's poll loops wait one or two seconds between polls, for a real DataRobot; here the clock
of cmkit.api.client sleeps a hundredth of that (conftest's fast_api_polls). Planning is
tests/push/test_plan.py's, push_bundle's input rules tests/push/test_push_bundle.py's, and the CLI's
pushes against a served emulator tests/push/test_cli_over_http.py's (slow tier).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cmkit.api.client import DataRobotClient
from cmkit.events import RecordingEvents
from cmkit.push import ManifestCache, PushOptions, PushResult, plan_push, prepare_bundle, push, push_bundle
from tests.support.bundles import training_csv, write_stdlib_bundle
from tests.support.emulator_support import TOKEN, FlaskEmulator
from tests.support.flask_transport import InProcessEmulator
from tests.support.http_server import api_client


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_api_polls: None) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def emulator(stdlib_emulator: InProcessEmulator) -> FlaskEmulator:
    return stdlib_emulator.flask


@pytest.fixture(scope="module")
def dataset_id(stdlib_dataset: str) -> str:
    return stdlib_dataset


@pytest.fixture(scope="module")
def api(emulator: FlaskEmulator) -> Iterator[DataRobotClient]:
    with api_client(emulator) as client:
        yield client


@pytest.fixture(autouse=True)
def no_faults_left(emulator: FlaskEmulator) -> Iterator[None]:
    yield
    emulator.injector.clear()


def carry_out(api: DataRobotClient, options: PushOptions, events: RecordingEvents | None = None) -> PushResult:
    cache = ManifestCache(options.bundle.parent / "manifests")
    plan = plan_push(api, prepare_bundle(options.bundle), options, cache)
    return push(api, plan, options, events or RecordingEvents(), cache)


def test_a_push_builds_dependencies_and_its_remote_test_passes(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle", name="push-remote-test", requirements="six==1.16.0\n")
    data = tmp_path / "train.csv"
    data.write_bytes(training_csv())
    options = PushOptions(
        bundle=root,
        environment_id=emulator.environment_id(),
        dataset=data,
        checks={"sideEffects": "skip", "nullValueImputation": "skip"},
        parameters={"predictionVerificationCheck": {"predictionsColumn": "y"}},
        verification_dataset=data,  # the model's exact predictions are the target column
    )
    events = RecordingEvents()
    # All of `cmkit push`: its own client on the endpoint, and the levels a check's parameters imply
    # (predictionVerificationCheck runs because its parameters are given).
    result = push_bundle(options, endpoint=api.config.endpoint, token=TOKEN, events=events)
    document = result.to_dict()
    assert (document["action"], document["createdModel"], document["buildStatus"]) == ("new-version", True, "success")
    assert document["filesUploaded"] == 4 and document["versionLabel"] == "v1.0"
    test = document["test"]
    assert test["overallStatus"] == "succeeded", test
    assert test["testingStatus"]["predictionVerificationCheck"]["status"] == "succeeded"
    assert test["testingStatus"]["sideEffects"]["status"] == "skipped" and test["datasetId"] == document["datasetId"]
    assert not result.failed
    stages = [line for line in events.lines if line.startswith("== ")]
    assert "== starting the dependency build" in stages and "== waiting for the model test" in stages
    assert any(label == "uploading train.csv" for label, *_ in events.progressed)


def test_a_model_that_fails_its_remote_test_makes_the_push_fail(
    emulator: FlaskEmulator, api: DataRobotClient, dataset_id: str, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle", "fails", name="push-failing-test")
    quick = {"sideEffects": "skip", "nullValueImputation": "skip"}
    options = PushOptions(bundle=root, environment_id=emulator.environment_id(), dataset_id=dataset_id, checks=quick)
    result = carry_out(api, options)
    # The test's job ends ERROR; the push reads the test itself for the reason.
    test = result.test
    assert test is not None and test.overall_status == "failed", test
    assert test.document["testingStatus"]["errorCheck"]["status"] == "failed"
    assert result.failed and result.dataset_id == dataset_id


def test_without_waiting_the_push_returns_what_it_started(
    emulator: FlaskEmulator, api: DataRobotClient, dataset_id: str, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle", "hangs", name="push-no-wait", requirements="six==1.16.0\n")
    options = PushOptions(bundle=root, environment_id=emulator.environment_id(), dataset_id=dataset_id, wait=False)
    result = carry_out(api, options)
    assert result.build_status in ("submitted", "processing", "success")
    test = result.test
    assert test is not None and test.overall_status == "in_progress" and "/status/" in test.document["status"]
    model_id = result.model_id
    running = emulator.request("GET", f"customModelTests/?customModelId={model_id}").get_json()["data"][0]
    assert emulator.request("DELETE", f"customModelTests/{running['id']}/").status_code == 204  # stop the hung test


def test_lost_answers_are_retried_after_looking_for_what_they_created(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle", name="push-retries")
    options = PushOptions(bundle=root, environment_id=emulator.environment_id())
    emulator.injector.add_rule(status=503, retry_after=0, method="POST", path=r"customModels/$")
    emulator.injector.add_rule(status=503, retry_after=0, method="POST", path=r"/versions/$")
    events = RecordingEvents()
    first = carry_out(api, options, events)
    assert first.created_model and first.version is not None
    retried = [line for line in events.lines if "retrying in 0.0s" in line]
    assert len(retried) == 2, events.lines  # the model and the version, once each
    # A second plan made before the model existed meets DataRobot's userProvidedId conflict,
    # and falls back to the model the first push created.
    (root / "serve.py").write_text((root / "serve.py").read_text() + "\n# edited\n")
    stale = plan_push(None, prepare_bundle(root), options, ManifestCache(tmp_path / "elsewhere"))
    assert stale.model_create is not None
    again = push(api, stale, options, RecordingEvents(), ManifestCache(tmp_path / "elsewhere"))
    assert again.model_id == first.model_id and not again.created_model
    assert again.version is not None and again.version.label == "v2.0"


def test_a_digest_that_cannot_be_recorded_is_a_warning_and_the_next_push_records_it(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle", name="push-no-digest")
    options = PushOptions(bundle=root, environment_id=emulator.environment_id(), major=False)
    emulator.injector.add_rule(status=503, retry_after=0, method="PATCH", path=r"/versions/[0-9a-f]+/$", count=8)
    events = RecordingEvents()
    result = carry_out(api, options, events)
    version = result.version
    assert version is not None and "cmkit-digest" not in str(version.description)
    assert any("could not record the bundle digest" in line for line in events.lines)
    # The next push finds the version its predecessor uploaded (issue 27 item 3): it records the
    # digest, and uploads nothing.
    again = carry_out(api, options)
    assert again.plan.action == "up-to-date" and again.plan.record_digest
    assert again.version is not None and again.version.id == version.id and again.uploaded_files == 0
    stored = emulator.request("GET", f"customModels/{result.model_id}/versions/{version.id}/").get_json()
    assert "cmkit-digest" in stored["description"]
    assert not carry_out(api, options).plan.record_digest  # recorded: nothing left pending


def test_ctrl_c_between_the_upload_and_its_digest_does_not_upload_it_twice(
    emulator: FlaskEmulator, api: DataRobotClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 3: interrupted after the version upload, before its digest was recorded, the
    rerun uploaded a second, identical version (2.0 = 1.0)."""
    from cmkit import push as push_module

    root = write_stdlib_bundle(tmp_path / "bundle", name="push-interrupted")
    options = PushOptions(bundle=root, environment_id=emulator.environment_id())
    carry_out(api, options)
    (root / "serve.py").write_text((root / "serve.py").read_text() + "\n# edited\n")

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(push_module, "_describe_version", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        carry_out(api, options)
    monkeypatch.undo()
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    rerun = carry_out(api, options)
    assert rerun.plan.action == "up-to-date" and rerun.uploaded_files == 0
    model_id = rerun.model_id
    labels = [v["label"] for v in emulator.request("GET", f"customModels/{model_id}/versions/").get_json()["data"]]
    assert labels == ["v2.0", "v1.0"], labels
    # And the next edit is a patch on that version again, not every file.
    (root / "serve.py").write_text((root / "serve.py").read_text() + "\n# edited again\n")
    assert carry_out(api, options).plan.action == "patch"
