"""Feature impact of custom model versions (cmkit/emulator/featureimpact.py) through Flask's test client.

The computation is real: the emulator's process runtime starts the version's start_server.sh
(write_stdlib_bundle's, a standard-library server predicting 3*x2 - 2*x7) and cmkit's
permutation impact runs on the version's training data through it. A served emulator's run of
the same lifecycle on cmkit's own runtime is in tests/emulator/test_chapter.py (slow tier).
"""

from __future__ import annotations

import pytest
import requests

from cmkit.emulator.featureimpact import CANCELLED
from cmkit.emulator.testing import _image_id
from tests.emulator.test_api import assert_conforms, create_model, create_version
from tests.support.bundles import stdlib_files
from tests.support.emulator_support import ended
from tests.support.flask_transport import InProcessEmulator

ABSENT = "0123456789abcdef01234567"
ROWS = 40  # training_csv()'s rows


@pytest.fixture(scope="module")
def dataset(stdlib_dataset: str) -> str:
    return stdlib_dataset


def version_with_training_data(
    emulator: InProcessEmulator, api: requests.Session, dataset: str, behaviour: str = "good"
) -> tuple[str, dict[str, object]]:
    """A model whose versions carry training data, and its version holding `dataset`."""
    model = create_model(api, emulator, isTrainingDataForVersionsPermanentlyEnabled=True)
    env_id = str(emulator.info["environmentId"])
    create_version(api, emulator, model["id"], stdlib_files(behaviour), baseEnvironmentId=env_id)
    version = create_version(
        api, emulator, model["id"], {}, method="PATCH", trainingData=f'{{"datasetId": "{dataset}"}}'
    )
    assert version.status_code == 201, version.text
    return str(model["id"]), dict(version.json())


def impact_url(emulator: InProcessEmulator, model_id: str, version_id: object) -> str:
    return emulator.url(f"customModels/{model_id}/versions/{version_id}/featureImpact/")


def test_the_lifecycle_ranks_the_two_features_first_and_a_new_row_count_recomputes(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model = create_model(api, emulator, isTrainingDataForVersionsPermanentlyEnabled=True)
    env_id = str(emulator.info["environmentId"])
    bare = create_version(api, emulator, model["id"], stdlib_files(), baseEnvironmentId=env_id).json()
    url = impact_url(emulator, model["id"], bare["id"])
    untrained = api.get(url)
    assert untrained.status_code == 422 and untrained.json()["errors"] == {"trainingData": "assign training data first"}
    assert api.post(url, json={}).status_code == 422
    model_id, version = version_with_training_data(emulator, api, dataset)
    url = impact_url(emulator, model_id, version["id"])
    nothing = api.get(url)
    assert nothing.status_code == 404 and "Feature impact data of custom model version" in nothing.json()["message"]
    too_many = api.post(url, json={"rowCount": ROWS + 1})
    assert too_many.status_code == 422 and f"{ROWS} rows" in too_many.json()["message"]
    assert too_many.json()["errors"] == {"rowCount": f"must be at most {ROWS}"}
    assert api.post(url, json={"rowCount": 5}).status_code == 422  # the schema's minimum
    started = api.post(url, json={"rowCount": 20})
    assert started.status_code == 202 and started.headers["Location"].endswith(f"{started.json()['statusId']}/")
    done = ended(api, started.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"].endswith(f"versions/{version['id']}/featureImpact/")
    impact = api.get(done.headers["Location"]).json()
    assert_conforms(impact, "FeatureImpactResponse")
    names = [item["featureName"] for item in impact["featureImpacts"]]
    assert names[:2] == ["x2", "x7"] and impact["rowCount"] == 20 and impact["count"] == 10
    assert all(item["impactUnnormalized"] == 0.0 for item in impact["featureImpacts"][2:])
    again = api.post(url, json={"rowCount": 20})
    assert again.status_code == 404 and again.json()["errors"]["jobId"] == started.json()["statusId"]
    image = _image_id(str(version["id"]), str(version["baseEnvironmentVersionId"]))
    image_url = emulator.url(f"customInferenceImages/{image}/featureImpact/")
    assert api.get(image_url).json() == impact
    assert api.get(emulator.url(f"customInferenceImages/{ABSENT}/featureImpact/")).status_code == 404
    recomputed = api.post(image_url, json={})  # another rowCount (the default logic): computed again
    assert recomputed.status_code == 202 and ended(api, recomputed.headers["Location"]).status_code == 303
    assert api.get(url).json()["rowCount"] is None


def test_a_model_that_fails_on_the_data_is_an_error_and_can_be_started_again(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model = create_model(api, emulator)
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, model["id"], stdlib_files("fails"), baseEnvironmentId=env_id).json()
    assigned = api.patch(emulator.url(f"customModels/{model['id']}/trainingData/"), json={"datasetId": dataset})
    assert ended(api, assigned.headers["Location"]).status_code == 303  # the model's own training data
    url = impact_url(emulator, model["id"], version["id"])
    status = ended(api, api.post(url, json={}).headers["Location"]).json()
    assert status["status"] == "ERROR" and status["message"].startswith("Feature impact failed: ")
    missing = api.get(url)
    assert missing.status_code == 404 and "No feature impact data" in missing.json()["message"]
    assert api.post(url, json={}).status_code == 202  # a failed computation can be started again


def test_a_running_computation_is_422_and_another_row_count_replaces_it(
    emulator: InProcessEmulator, api: requests.Session, dataset: str
) -> None:
    model_id, version = version_with_training_data(emulator, api, dataset, "hangs")
    url = impact_url(emulator, model_id, version["id"])
    first = api.post(url, json={})
    assert first.status_code == 202
    running = api.get(url)
    assert running.status_code == 422 and "in progress" in running.json()["message"]
    assert api.post(url, json={}).json()["errors"]["jobId"] == first.json()["statusId"]
    second = api.post(url, json={"rowCount": 10})
    assert second.status_code == 202 and second.json()["statusId"] != first.json()["statusId"]
    replaced = ended(api, first.headers["Location"]).json()  # ABORTED once the job recorded (or not) its end
    assert (replaced["status"], replaced["message"]) == ("ABORTED", CANCELLED)
    # The replaced job ending did not touch its successor's record.
    assert api.get(url).status_code == 422
    assert api.get(second.headers["Location"], allow_redirects=False).json()["status"] in ("INITIALIZED", "RUNNING")


def test_models_without_a_scored_target_and_unknown_ids_are_refused(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    anomaly = create_model(api, emulator, targetType="Anomaly", targetName=None)
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, anomaly["id"], stdlib_files(), baseEnvironmentId=env_id).json()
    url = impact_url(emulator, anomaly["id"], version["id"])
    for response in (api.get(url), api.post(url, json={})):
        assert (
            response.status_code == 422 and "needs an inference model of type Regression" in response.json()["message"]
        )
    assert api.get(impact_url(emulator, ABSENT, version["id"])).status_code == 404
    assert api.post(impact_url(emulator, anomaly["id"], ABSENT), json={}).status_code == 404
