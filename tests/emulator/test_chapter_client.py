"""DataRobot's official client (datarobot==3.20.0) on the rest of the chapter: training data,
feature impact, copies, templates and sharing, through its public API only.

The process runtime runs everything here; feature impact also runs once on the Docker runtime,
the one model tests use by default.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bundles import write_two_of_ten
from tests.support.emulator_support import TOKEN, Emulator, seeded_environment_ready
from tests.support.lazy import lazy_module

dr = lazy_module("datarobot")  # all of this module's tests are slow: the fast tier collects it for nothing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("chapter") / "data", runtime="process").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(emulator: Emulator) -> dr.rest.RESTClientObject:
    # Per test: dr.Client sets the client's global, which the Docker test points elsewhere.
    return dr.Client(endpoint=emulator.endpoint, token=TOKEN)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("two-of-ten")
    return {target: write_two_of_ten(root / target, target) for target in ("regression", "binary")}


def model_for(target: str, name: str, **extra: object) -> dr.CustomInferenceModel:
    labels = {"positive_class_label": "yes", "negative_class_label": "no"} if target == "binary" else {}
    return dr.CustomInferenceModel.create(
        name=name,
        target_type=dr.TARGET_TYPE.BINARY if target == "binary" else dr.TARGET_TYPE.REGRESSION,
        target_name="y",
        language="python",
        **labels,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def top_two(version: dr.CustomModelVersion) -> set[str]:
    impacts = version.get_feature_impact()
    assert impacts[0]["impactNormalized"] == 1.0
    assert all(abs(item["impactNormalized"]) < 0.05 for item in impacts[2:]), impacts
    return {item["featureName"] for item in impacts[:2]}


@pytest.mark.parametrize("target", ["regression", "binary"])
def test_model_level_training_data_then_feature_impact(
    client: dr.rest.RESTClientObject, emulator: Emulator, bundles: dict[str, Path], target: str
) -> None:
    model = model_for(target, f"fi-{target}")
    env_id = emulator.info["environmentId"]
    version = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env_id, folder_path=str(bundles[target]))
    dataset = dr.Dataset.create_from_file(file_path=str(bundles[target] / "data" / "train.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # assign_training_data is deprecated in the client
        model.assign_training_data(dataset.id, max_wait=60)
    assert (model.training_dataset_id, model.training_data_file_name) == (dataset.id, "train.csv")
    assert model.training_data_assignment_in_progress is False
    version.calculate_feature_impact(max_wait=120)
    assert top_two(version) == {"x2", "x7"}
    metadata = version.get_feature_impact(with_metadata=True)
    assert metadata["rowCount"] is None and metadata["shapBased"] is False and metadata["count"] == 10


def test_version_level_training_data(
    client: dr.rest.RESTClientObject, emulator: Emulator, bundles: dict[str, Path]
) -> None:
    model = model_for("regression", "fi-versions", is_training_data_for_versions_permanently_enabled=True)
    env_id = emulator.info["environmentId"]
    folder = str(bundles["regression"])
    first = dr.CustomModelVersion.create_clean(model.id, base_environment_id=env_id, folder_path=folder)
    assert first.training_data is None
    dataset = dr.Dataset.create_from_file(file_path=str(bundles["regression"] / "data" / "train.csv"))
    second = dr.CustomModelVersion.create_from_previous(
        model.id, base_environment_id=env_id, training_dataset_id=dataset.id
    )
    assert second.training_data.dataset_id == dataset.id and not second.training_data.assignment_in_progress
    third = dr.CustomModelVersion.create_from_previous(model.id, base_environment_id=env_id, is_major_update=False)
    assert third.training_data.dataset_id == dataset.id  # inherited (keepTrainingHoldoutData defaults to true)
    third.calculate_feature_impact(max_wait=120)
    assert top_two(third) == {"x2", "x7"}
    with pytest.raises(dr.errors.ClientError) as refused:  # the model level is disabled for this model
        model.assign_training_data(dataset.id, max_wait=None)
    assert refused.value.status_code == 422


@pytest.mark.docker
def test_feature_impact_on_the_docker_runtime(
    docker_client: object, tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]
) -> None:
    running = Emulator(tmp_path_factory.mktemp("chapter-docker") / "data", runtime="docker").start()
    try:
        seeded_environment_ready(running)
        dr.Client(endpoint=running.endpoint, token=TOKEN)
        model = model_for("regression", "fi-docker", is_training_data_for_versions_permanently_enabled=True)
        dataset = dr.Dataset.create_from_file(file_path=str(bundles["regression"] / "data" / "train.csv"))
        version = dr.CustomModelVersion.create_clean(
            model.id,
            base_environment_id=running.info["environmentId"],
            folder_path=str(bundles["regression"]),
            training_dataset_id=dataset.id,
        )
        version.calculate_feature_impact(max_wait=600)
        assert top_two(version) == {"x2", "x7"}
    finally:
        running.stop()


def test_copy_templates_and_sharing_through_the_client(
    client: dr.rest.RESTClientObject, emulator: Emulator, bundles: dict[str, Path]
) -> None:
    model = model_for("binary", "to-copy")
    env_id = emulator.info["environmentId"]
    dr.CustomModelVersion.create_clean(model.id, base_environment_id=env_id, folder_path=str(bundles["binary"]))
    copy = dr.CustomInferenceModel.copy_custom_model(model.id)
    model.refresh()
    assert copy.id != model.id and copy.target_type == model.target_type
    assert copy.positive_class_label == "yes" and copy.latest_version.label == "v1.0"
    assert {i.file_path for i in copy.latest_version.items} == {i.file_path for i in model.latest_version.items}
    templates = dr.models.custom_templates.CustomTemplate.list()
    subtypes = {t.template_sub_type for t in templates}
    # One template per served target type (cmkit init's), as the emulator lists them: all ten now.
    assert subtypes == {
        "Regression", "Binary", "Multiclass", "Anomaly", "TextGeneration", "Unstructured", "AgenticWorkflow",
        "Transform", "GeoPoint", "VectorDatabase",
    }  # fmt: skip
    environment = dr.ExecutionEnvironment.get(env_id)
    environment.share([dr.SharingAccess("ana@example.com", dr.enums.SHARING_ROLE.CONSUMER, can_share=False)])
    roles = {access.username: access.role for access in environment.get_access_list()}
    assert roles["ana@example.com"] == "CONSUMER" and "OWNER" in roles.values()
