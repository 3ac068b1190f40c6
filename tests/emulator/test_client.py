"""The judge: DataRobot's official client (datarobot==3.20.0) drives the emulator's Docker runtime.

Everything here goes through the client's public API only. The client polls every 5 s; where
its own knobs allow (`max_wait=None`, then `refresh()`), the tests poll faster instead.
"""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmkit.paths import default_environment_dir
from tests.support.bundles import write_flask_bundle
from tests.support.emulator_support import TOKEN, Emulator, seeded_environment_ready
from tests.support.lazy import lazy_module

dr = lazy_module("datarobot")  # all of this module's tests are slow: the fast tier collects it for nothing

pytestmark = [pytest.mark.docker, pytest.mark.slow]
FINAL_BUILD = ("success", "failed")
RUNNING_TEST = ("queued", "in_progress")


@pytest.fixture(scope="module")
def emulator(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("judge") / "data", runtime="docker").start()
    try:
        seeded_environment_ready(running)  # later builds of the same template hit the cache
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> dr.rest.RESTClientObject:
    return dr.Client(endpoint=emulator.endpoint, token=TOKEN)


@pytest.fixture(scope="module")
def environment(client: dr.rest.RESTClientObject) -> dr.ExecutionEnvironment:
    env = dr.ExecutionEnvironment.create(name="judge-python", programming_language="python", description="judge")
    version = dr.ExecutionEnvironmentVersion.create(
        env.id, str(default_environment_dir()), label="py311", description="from the folder", max_wait=None
    )
    while version.build_status not in FINAL_BUILD:
        time.sleep(0.5)
        version.refresh()
    assert version.build_status == "success", version.get_build_log()
    env.refresh()
    return env


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # No sample_models/ on main yet: real gunicorn bundles written by the test-local fixtures.
    root = tmp_path_factory.mktemp("bundles")
    return {
        "binary": write_flask_bundle(root / "binary", target="binary", requirements="six==1.16.0\n"),
        "nan_output": write_flask_bundle(root / "nan_output", "nan_output", target="regression"),
        # A server that never answers: its test stays in progress until cancelled.
        "hanging": write_flask_bundle(root / "hanging", start_script="#!/bin/sh\nexec sleep 600\n"),
    }


def binary_model(name: str = "judge-binary") -> dr.CustomInferenceModel:
    return dr.CustomInferenceModel.create(
        name=name,
        target_type=dr.TARGET_TYPE.BINARY,
        target_name="y",
        positive_class_label="yes",
        negative_class_label="no",
        language="python",
        description="binary judge",
    )


def test_environment_from_a_folder(environment: dr.ExecutionEnvironment) -> None:
    assert environment.latest_version is not None
    assert environment.latest_version.build_status == "success"
    assert environment.latest_version.label == "py311"
    log, error = environment.latest_version.get_build_log()
    assert "build succeeded" in log and error is None
    assert environment.id in [e.id for e in dr.ExecutionEnvironment.list()]


def test_environment_build_failure_has_a_log(client: dr.rest.RESTClientObject, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM python:3.11-slim\nRUN echo broken-{time.time_ns()} && exit 3\n")
    env = dr.ExecutionEnvironment.create(name="judge-broken", programming_language="other")
    version = dr.ExecutionEnvironmentVersion.create(env.id, str(tmp_path), max_wait=None)
    while version.build_status not in FINAL_BUILD:
        time.sleep(0.5)
        version.refresh()
    assert version.build_status == "failed"
    log, error = version.get_build_log()
    assert "exit 3" in log and error and "non-zero code: 3" in error


def test_models_of_each_target_type(client: dr.rest.RESTClientObject) -> None:
    regression = dr.CustomInferenceModel.create(
        name="judge-reg", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y"
    )
    assert regression.target_type == "Regression" and regression.latest_version is None
    binary = binary_model()
    assert (binary.positive_class_label, binary.negative_class_label) == ("yes", "no")
    multiclass = dr.CustomInferenceModel.create(
        name="judge-multi", target_type=dr.TARGET_TYPE.MULTICLASS, target_name="y", class_labels=["a", "b", "c"]
    )
    assert multiclass.class_labels == ["a", "b", "c"]
    fetched = dr.CustomInferenceModel.get(multiclass.id)
    assert fetched.target_type == "Multiclass" and fetched.class_labels == ["a", "b", "c"]
    binary.update(description="updated")
    assert dr.CustomInferenceModel.get(binary.id).description == "updated"


def test_versions_clean_and_from_previous(
    environment: dr.ExecutionEnvironment, bundles: dict[str, Path], tmp_path: Path
) -> None:
    model = binary_model("judge-versions")
    folder = bundles["binary"]
    clean = dr.CustomModelVersion.create_clean(model.id, base_environment_id=environment.id, folder_path=str(folder))
    expected = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {item.file_path for item in clean.items} == expected
    assert [(d.package_name, [(c.constraint_type, c.version) for c in d.constraints]) for d in clean.dependencies] == [
        ("six", [("==", "1.16.0")])
    ]
    assert clean.base_environment_version_id == environment.latest_successful_version.id
    extra = tmp_path / "helper.py"
    extra.write_text("HELP = True\n")
    doomed = next(item for item in clean.items if item.file_path == "behaviour.txt")
    derived = dr.CustomModelVersion.create_from_previous(
        model.id, is_major_update=False, files=[(str(extra), "lib/helper.py")], files_to_delete=[doomed.id]
    )
    assert (derived.version_major, derived.version_minor) == (clean.version_major, clean.version_minor + 1)
    assert {item.file_path for item in derived.items} == (expected - {"behaviour.txt"}) | {"lib/helper.py"}
    assert [v.id for v in dr.CustomModelVersion.list(model.id)] == [derived.id, clean.id]
    archive = tmp_path / "derived.zip"
    derived.download(str(archive))
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.read("lib/helper.py") == b"HELP = True\n"
    model.refresh()
    assert model.latest_version.id == derived.id


def test_dependency_builds_succeed_and_fail_with_a_log(
    environment: dr.ExecutionEnvironment, bundles: dict[str, Path], tmp_path: Path
) -> None:
    model = binary_model("judge-builds")
    good = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=environment.id, folder_path=str(bundles["binary"])
    )
    build = dr.CustomModelVersionDependencyBuild.start_build(model.id, good.id, max_wait=1200)
    assert build is not None and build.build_status == "success", build and build.get_log()
    assert build.started_at and build.completed_at
    bad_requirements = tmp_path / "requirements.txt"
    bad_requirements.write_text("cmkit-there-is-no-such-package==0.0.1\n")
    bad = dr.CustomModelVersion.create_from_previous(model.id, files=[(str(bad_requirements), "requirements.txt")])
    assert [d.package_name for d in bad.dependencies] == ["cmkit-there-is-no-such-package"]
    failed = dr.CustomModelVersionDependencyBuild.start_build(model.id, bad.id, max_wait=1200)
    assert failed is not None and failed.build_status == "failed"
    log = failed.get_log()
    assert "cmkit-there-is-no-such-package" in log and "No matching distribution" in log


def run_test(model: Any, version: Any, dataset: dr.Dataset) -> dr.CustomModelTest:
    """CustomModelTest.create as users call it: it waits on the status route (202, then 303/ERROR)."""
    return dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=1200)


def test_model_tests_pass_and_fail_like_datarobot(
    environment: dr.ExecutionEnvironment, bundles: dict[str, Path]
) -> None:
    model = binary_model("judge-test-good")
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=environment.id, folder_path=str(bundles["binary"])
    )
    dataset = dr.Dataset.create_from_file(file_path=str(bundles["binary"] / "data" / "sample.csv"))
    assert dataset.row_count == 60 and dataset.processing_state == "COMPLETED"
    passed = run_test(model, version, dataset)
    assert passed.overall_status == "succeeded", passed.detailed_status
    seed_four = ("error_check", "null_value_imputation", "long_running_service", "side_effects")
    assert {passed.detailed_status[name]["status"] for name in seed_four} == {"succeeded"}
    # The client sends no configuration: the later three are off, as on DataRobot.
    later = set(passed.detailed_status) - set(seed_four)
    assert len(later) == 3 and {passed.detailed_status[name]["status"] for name in later} == {"skipped"}
    assert "overallStatus: succeeded" in passed.get_log()
    assert "overallStatus" in passed.get_log_tail()
    assert [t.id for t in dr.CustomModelTest.list(model.id)] == [passed.id]

    broken = dr.CustomInferenceModel.create(name="judge-nan", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")
    broken_version = dr.CustomModelVersion.create_clean(
        broken.id, base_environment_id=environment.id, folder_path=str(bundles["nan_output"])
    )
    broken_data = dr.Dataset.create_from_file(file_path=str(bundles["nan_output"] / "data" / "sample.csv"))
    failed = run_test(broken, broken_version, broken_data)
    assert failed.overall_status == "failed"
    error_check = failed.detailed_status["error_check"]
    assert error_check["status"] == "failed" and "not valid JSON" in error_check["message"]
    assert failed.detailed_status["long_running_service"]["status"] == "succeeded"


def test_cancel_a_running_test_through_the_client(
    environment: dr.ExecutionEnvironment, bundles: dict[str, Path]
) -> None:
    model = dr.CustomInferenceModel.create(name="judge-cancel", target_type=dr.TARGET_TYPE.REGRESSION, target_name="y")
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=environment.id, folder_path=str(bundles["hanging"])
    )
    dataset = dr.Dataset.create_from_file(file_path=str(bundles["hanging"] / "data" / "sample.csv"))
    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=None)
    assert test.overall_status in RUNNING_TEST
    test.cancel()
    test.refresh()
    assert test.overall_status == "canceled"
    with pytest.raises(dr.errors.ClientError) as raised:
        test.cancel()
    assert raised.value.status_code == 409


def test_list_models_across_pages(client: dr.rest.RESTClientObject, emulator: Emulator) -> None:
    created = {
        dr.CustomInferenceModel.create(name=f"judge-page-{i}", target_type="Regression", target_name="y").id
        for i in range(45)
    }
    session = emulator.session()
    session.delete(emulator.root + "__emulator__/requests")
    listed = dr.CustomInferenceModel.list(search_for="judge-page-")
    assert {m.id for m in listed} == created and len(listed) == len(created)
    journal = session.get(emulator.root + "__emulator__/requests").json()["requests"]
    pages = [e for e in journal if e["path"] == "/api/v2/customModels/" and e["method"] == "GET"]
    assert len(pages) == 3  # the default page size is 20: the client followed `next` twice


def test_download_of_an_environment_version(environment: dr.ExecutionEnvironment, tmp_path: Path) -> None:
    target = tmp_path / "context.zip"
    environment.latest_version.download(str(target))
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        assert "Dockerfile" in archive.namelist()
    shutil.rmtree(tmp_path, ignore_errors=True)
