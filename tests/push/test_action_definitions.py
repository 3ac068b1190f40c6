"""`cmkit push` of a bundle the GitHub Action defines: the Action's model, found again by its namespaced id.

Against the session's in-process emulator (a real loopback socket), which runs the pushed
stdlib model's remote test with the Action's test settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cmkit.api.client import DataRobotClient
from cmkit.modeldefs import definition_for
from cmkit.push import PushOptions, push_bundle
from tests.support.bundles import write_stdlib_bundle
from tests.support.emulator_support import TOKEN, FlaskEmulator
from tests.support.flask_transport import InProcessEmulator
from tests.support.http_server import api_client


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_api_polls: None) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def api(stdlib_emulator: InProcessEmulator) -> Iterator[DataRobotClient]:
    with api_client(stdlib_emulator.flask) as client:
        yield client


def _model_yaml(environment_id: str, dataset_id: str, skip: bool) -> str:
    return f"""\
user_provided_model_id: action-defined
target_type: Regression
settings:
  name: Action defined
  description: pushed by cmkit as the Action would
  target_name: y
version:
  model_environment_id: {environment_id}
  memory: 512Mi
  replicas: 2
  exclude_glob_pattern: [model.yaml]
test:
  skip: {str(skip).lower()}
  test_data_id: {dataset_id}
  checks:
    side_effects: {{enabled: true, block_deployment_if_fails: true}}
"""


def test_push_creates_the_actions_model_and_finds_it_again(
    stdlib_emulator: InProcessEmulator, stdlib_dataset: str, api: DataRobotClient, tmp_path: Path
) -> None:
    emulator: FlaskEmulator = stdlib_emulator.flask
    root = write_stdlib_bundle(tmp_path / "bundle")
    (root / "model.yaml").write_text(_model_yaml(emulator.environment_id(), stdlib_dataset, skip=True))
    options = PushOptions(bundle=root, definition=definition_for(root), namespace="team")
    result = push_bundle(options, endpoint=api.config.endpoint, token=TOKEN)
    assert result.created_model and not result.failed, result.to_dict()
    model = api.get(f"customModels/{result.model_id}/")
    assert model["userProvidedId"] == "team/action-defined"
    assert (model["name"], model["targetType"], model["targetName"]) == ("Action defined", "Regression", "y")
    version = api.get(f"customModels/{result.model_id}/versions/{result.version_id}/")
    assert (version["maximumMemory"], version["replicas"]) == (512 * 2**20, 2)
    assert {item["filePath"] for item in version["items"]} == {"start_server.sh", "serve.py"}  # model.yaml excluded
    assert result.test is None  # skip: true
    again = push_bundle(options, endpoint=api.config.endpoint, token=TOKEN)
    assert (again.model_id, again.created_model, again.plan.action) == (result.model_id, False, "up-to-date")


@pytest.mark.slow
def test_push_runs_the_test_the_definition_configures(
    stdlib_emulator: InProcessEmulator, stdlib_dataset: str, api: DataRobotClient, tmp_path: Path
) -> None:
    root = write_stdlib_bundle(tmp_path / "bundle")
    (root / "model.yaml").write_text(
        _model_yaml(stdlib_emulator.flask.environment_id(), stdlib_dataset, skip=False).replace(
            "action-defined", "action-tested"
        )
    )
    options = PushOptions(bundle=root, definition=definition_for(root), namespace="team")
    result = push_bundle(options, endpoint=api.config.endpoint, token=TOKEN)
    assert result.test is not None and result.test.overall_status == "succeeded", result.to_dict()
    statuses = {name: check["status"] for name, check in result.test.document["testingStatus"].items()}
    assert statuses["sideEffects"] == "succeeded" and statuses["nullValueImputation"] == "skipped"
