"""DataRobot's official client (datarobot==3.20.0) delivers a custom model version to a
deployment on a served emulator, and the deployment predicts as `cmkit predict` does.

The model is `cmkit init`'s binary template (cmkit's runtime, its sample data), served by the
emulator's process runtime. Predictions go through the prediction API's route
(`predApi/v1.0/deployments/{id}/predictions`, at the deployment's prediction server) as CSV and
as JSON records, and each row's probabilities are compared with `cmkit predict`'s on the same
rows (the core function the command calls, same runtime).
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cmkit.engine.choice import PROCESS
from cmkit.predict import predict_bundle
from cmkit.resolvedrun import TestLocalConfig
from cmkit.scaffold import init_bundle, make_spec
from tests.support.emulator_support import TOKEN, Emulator, seeded_environment_ready
from tests.support.lazy import lazy_module

dr = lazy_module("datarobot")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("deploy-client") / "data", runtime="process").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def docker_emulator(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = Emulator(tmp_path_factory.mktemp("deploy-client-docker") / "data", runtime="docker").start()
    try:
        seeded_environment_ready(running)
        yield running
    finally:
        running.stop()


def test_a_version_goes_from_package_to_deployment_and_predicts_as_cmkit_predict(
    emulator: Emulator, tmp_path: Path
) -> None:
    deliver_and_compare(emulator, tmp_path)


@pytest.mark.docker
def test_a_deployment_in_the_docker_runtime_predicts_as_cmkit_predict(
    docker_emulator: Emulator, tmp_path: Path
) -> None:
    deliver_and_compare(docker_emulator, tmp_path)


def deliver_and_compare(emulator: Emulator, tmp_path: Path) -> None:
    """The official client's delivery of `cmkit init`'s binary model; its predictions checked."""
    bundle = tmp_path / "model"
    init_bundle(bundle, make_spec("binary", "deploy-judge"))
    sample = bundle / "data" / "sample.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dr.Client(endpoint=emulator.endpoint, token=TOKEN)
    assert not [str(w.message) for w in caught if "server version" in str(w.message)]

    model = dr.CustomInferenceModel.create(
        name="deploy-judge",
        target_type=dr.TARGET_TYPE.BINARY,
        target_name="churned",
        positive_class_label="1",
        negative_class_label="0",
        language="python",
    )
    version = dr.CustomModelVersion.create_clean(
        model.id, base_environment_id=str(emulator.info["environmentId"]), folder_path=str(bundle)
    )
    assert (version.version_major, version.version_minor) == (1, 0)
    registered = dr.RegisteredModelVersion.create_for_custom_model_version(version.id, name="deploy-judge v1")
    assert registered.model_id == version.id and registered.registered_model_version == 1
    environment = next(pe for pe in dr.PredictionEnvironment.list() if "customModel" in pe.supported_model_formats)
    deployment = dr.Deployment.create_from_registered_model_version(
        registered.id, label="deploy-judge", prediction_environment_id=environment.id, max_wait=300
    )
    assert deployment.status == "active" and deployment.model["id"] == version.id
    assert deployment.id in [listed.id for listed in dr.Deployment.list()]

    url = f"{deployment.default_prediction_server['url']}/predApi/v1.0/deployments/{deployment.id}/predictions"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    by_csv = requests.post(url, data=sample.read_bytes(), headers={**headers, "Content-Type": "text/csv"}, timeout=60)
    assert by_csv.status_code == 200, by_csv.text
    records = list(csv.DictReader(io.StringIO(sample.read_text())))
    by_json = requests.post(url, json=records, headers=headers, timeout=60)
    assert by_json.status_code == 200, by_json.text
    assert by_json.json() == by_csv.json()

    local = predict_bundle(TestLocalConfig(bundle=bundle, runtime=PROCESS, isolate=False), sample)
    assert local.ok and local.predictions is not None, local.problem
    deployed = by_csv.json()["data"]
    assert len(deployed) == len(local.predictions) == len(records)
    for row, expected in zip(deployed, local.predictions.to_dict(orient="records"), strict=True):
        probabilities = {entry["label"]: entry["value"] for entry in row["predictionValues"]}
        assert probabilities == pytest.approx({label: float(value) for label, value in expected.items()})
        assert row["prediction"] == ("1" if probabilities["1"] >= row["predictionThreshold"] else "0")

    # The settings, a replacement and the challengers, through the client's own methods.
    deployment.update_drift_tracking_settings(target_drift_enabled=True, feature_drift_enabled=True, max_wait=60)
    drift = deployment.get_drift_tracking_settings()
    assert drift["target_drift"]["enabled"] is True and drift["feature_drift"]["enabled"] is True
    newer = dr.CustomModelVersion.create_from_previous(
        model.id, base_environment_id=str(emulator.info["environmentId"])
    )
    assert (newer.version_major, newer.version_minor) == (2, 0)  # the packaged 1.0 is frozen
    replacement = dr.RegisteredModelVersion.create_for_custom_model_version(
        newer.id, registered_model_id=registered.registered_model_id
    )
    assert replacement.registered_model_version == 2
    status, _, _ = deployment.validate_replacement_model(new_registered_model_version_id=replacement.id)
    assert status == "passing"
    deployment.perform_model_replace(replacement.id, dr.enums.MODEL_REPLACEMENT_REASON.ACCURACY, max_wait=300)
    assert dr.Deployment.get(deployment.id).model["id"] == newer.id
    assert [challenger.model["id"] for challenger in deployment.list_challengers()] == [newer.id]
    replaced = requests.post(url, json=records, headers=headers, timeout=60)
    assert replaced.json() == by_csv.json()  # the same code, so the same predictions

    deployment.delete()
    assert deployment.id not in [listed.id for listed in dr.Deployment.list()]
    assert requests.post(url, json=records, headers=headers, timeout=60).status_code == 404
