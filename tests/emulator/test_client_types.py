"""The official client (datarobot==3.20.0) on the emulator for the types that are not rows.

An unstructured model is created, versioned from `cmkit init`'s bundle and tested with its
sample file as the dataset: the emulator runs test-local's checks, which send that file whole
to /predictUnstructured/ (the reference's dataset "for unstructured models"); a test without a
dataset is accepted for it, as the reference requires one only for structured models (the
emulator's run then reads the bundle's validation.input, as test-local does).

Transform, GeoPoint and VectorDatabase models (which the client names only as strings) are
created, versioned from `cmkit init`'s bundles and tested with their sample CSV: a transform's
frame on /transform/, a point or a string per row on predict_no_state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cmkit.scaffold import init_bundle, make_spec
from tests.emulator.test_client import client, emulator, environment  # noqa: F401 - the module's fixtures
from tests.support.lazy import lazy_module

dr = lazy_module("datarobot")  # all of this module's tests are slow: the fast tier collects it for nothing

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_an_unstructured_model_is_tested_with_its_file(
    environment: dr.ExecutionEnvironment,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "triage"
    init_bundle(bundle, make_spec("unstructured", "triage"))
    model = dr.CustomInferenceModel.create(
        name="judge-unstructured", target_type=dr.TARGET_TYPE.UNSTRUCTURED, language="python"
    )
    assert model.target_type == "Unstructured"
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=environment.id, folder_path=str(bundle), max_wait=None
    )
    dataset = dr.Dataset.create_from_file(file_path=str(bundle / "data" / "sample.txt"))
    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=1200)
    assert test.overall_status == "succeeded", test.get_log()
    assert test.detailed_status["error_check"]["status"] == "succeeded"
    assert "answered with" in test.detailed_status["error_check"]["message"]
    assert test.detailed_status["null_value_imputation"]["status"] == "skipped"
    without = dr.CustomModelTest.create(model.id, version.id, max_wait=1200)
    assert without.overall_status == "succeeded", without.get_log()
    # The emulator's run reads the bundle's validation.input when the test names no dataset, as
    # test-local does: init's sample file, sent whole again.
    assert without.detailed_status["error_check"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("api_name", "target_name", "success"),
    [
        ("Transform", None, "rows transformed into 6 columns"),
        ("GeoPoint", "depot", "24 rows predicted"),
        ("VectorDatabase", "relevant", "10 rows predicted"),
    ],
)
def test_the_row_types_the_client_has_no_constant_for_are_tested_with_their_csv(
    environment: dr.ExecutionEnvironment,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    api_name: str,
    target_name: str | None,
    success: str,
) -> None:
    # datarobot 3.20 refuses to create these three (its create() knows eight types): the model is
    # created through the client's own REST session, then read, versioned and tested by the client.
    bundle = tmp_path / api_name.lower()
    init_bundle(bundle, make_spec(api_name.lower(), bundle.name))
    body = {"name": f"judge-{bundle.name}", "targetType": api_name, "customModelType": "inference"}
    created = dr.client.get_client().post("customModels/", data={**body, "targetName": target_name})
    model = dr.CustomInferenceModel.get(created.json()["id"])
    assert model.target_type == api_name
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=environment.id, folder_path=str(bundle), max_wait=None
    )
    dataset = dr.Dataset.create_from_file(file_path=str(bundle / "data" / "sample.csv"))
    test = dr.CustomModelTest.create(model.id, version.id, dataset_id=dataset.id, max_wait=1200)
    assert test.overall_status == "succeeded", test.get_log()
    assert success in test.detailed_status["error_check"]["message"]
    assert test.detailed_status["null_value_imputation"]["status"] == "succeeded"
