"""The rest of the custom-models chapter (process runtime), checked against the seed.

In-process through Flask's test client (tests/support/flask_transport.py); what runs real model servers
(feature impact) runs against a served `cmkit emulator` in the slow tier.

Training data, feature impact, copies and templates, versions from a real git repository,
conversions, prediction explanation initialisation, environment sharing and permanent deletion.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from zipfile import ZIP_STORED

import pytest
import requests

from cmkit.emulator.copies import bundle_templates
from cmkit.emulator.reference import load_reference
from cmkit.emulator.testing import _image_id
from tests.emulator.test_api import (
    assert_conforms,
    build_status,
    create_model,
    create_version,
    upload_dataset,
)
from tests.support.bundles import write_two_of_ten
from tests.support.emulator_support import Emulator, wait_for, zip_bytes
from tests.support.flask_transport import SUBPROCESS_ONLY, Emulated, start

ABSENT = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulated]:
    running = start(request, tmp_path_factory.mktemp("chapter-api"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(emulator: Emulated) -> requests.Session:
    return emulator.session()


@pytest.fixture(scope="module")
def env_id(emulator: Emulated) -> str:
    return str(emulator.info["environmentId"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_of_ten(tmp_path_factory.mktemp("two") / "regression", rows=120)


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def finished(api: requests.Session, status_url: str) -> requests.Response:
    """The status once its job ended: a 303 to the result, or 200 with a final status."""

    def ended() -> requests.Response | None:
        polled = api.get(status_url, allow_redirects=False)
        final = polled.status_code == 303 or polled.json()["status"] in ("COMPLETED", "ERROR", "ABORTED")
        return polled if final else None

    return wait_for(ended, timeout=120)


def dataset_id(emulator: Emulated, api: requests.Session, content: bytes, name: str = "train.csv") -> str:
    response = upload_dataset(emulator, api, content, name)
    assert finished(api, response.headers["Location"]).status_code == 303
    return str(response.json()["catalogId"])


def test_every_route_of_the_reference_is_emulated(emulator: Emulated, api: requests.Session) -> None:
    for method, path in load_reference().routes:
        url = emulator.url(path.replace("{", "").replace("}", ""))  # ids that do not exist
        response = api.request(method, url, json={})
        assert response.status_code not in (405, 501), (method, path, response.text)
        assert "No such route" not in response.text, (method, path)


# -- training data -------------------------------------------------------------------------------


def test_model_training_data_assignment(emulator: Emulated, api: requests.Session, bundle: Path) -> None:
    model = create_model(api, emulator)
    url = emulator.url(f"customModels/{model['id']}/trainingData/")
    without_target = dataset_id(emulator, api, b"a,b\n1,2\n")
    refused = api.patch(url, json={"datasetId": without_target})
    assert refused.status_code == 422 and "target is not found in the provided dataset" in refused.json()["message"]
    assert api.patch(url, json={"datasetId": ABSENT}).status_code == 404
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    assert api.patch(url, json={"datasetId": good, "partitionColumn": "nope"}).status_code == 422
    accepted = api.patch(url, json={"datasetId": good, "datasetName": "my training data"})
    assert accepted.status_code == 202
    done = finished(api, accepted.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"].endswith(f"customModels/{model['id']}/")
    fetched = api.get(done.headers["Location"]).json()
    assert_conforms(fetched, "CustomModelResponse")
    assert (fetched["trainingDatasetId"], fetched["trainingDataFileName"]) == (good, "my training data")
    assert fetched["trainingDataAssignmentInProgress"] is False


def test_version_training_data(emulator: Emulated, api: requests.Session, env_id: str, bundle: Path) -> None:
    plain = create_model(api, emulator)
    create_version(api, emulator, plain["id"], {"a.py": b""}, baseEnvironmentId=env_id)
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    body = {"trainingData": {"datasetId": good}}
    url = emulator.url(f"customModels/{plain['id']}/versions/withTrainingData/")
    assert api.patch(url, json=body).status_code == 422  # not enabled for versions on this model
    refused = create_version(api, emulator, plain["id"], {}, method="PATCH", trainingData=f'{{"datasetId": "{good}"}}')
    assert refused.status_code == 422
    model = create_model(api, emulator, isTrainingDataForVersionsPermanentlyEnabled=True)
    url = emulator.url(f"customModels/{model['id']}/versions/withTrainingData/")
    assert api.patch(url, json=body).status_code == 422  # no version yet
    create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id)
    assert api.patch(url, json={"trainingData": {"datasetId": ABSENT}}).status_code == 404
    response = api.patch(url, json=body)
    assert response.status_code == 202, response.text
    version = response.json()
    assert_conforms(version, "CustomModelVersionResponse")
    assert (version["versionMajor"], version["versionMinor"]) == (1, 1) and [i["filePath"] for i in version["items"]]
    assert version["trainingData"]["datasetId"] == good and version["trainingData"]["assignmentInProgress"] is False
    kept = create_version(api, emulator, model["id"], {"b.py": b""}, method="PATCH").json()
    assert kept["trainingData"]["datasetId"] == good
    dropped = create_version(api, emulator, model["id"], {}, method="PATCH", keepTrainingHoldoutData="false").json()
    assert "trainingData" not in dropped or dropped["trainingData"] is None
    model_url = emulator.url(f"customModels/{model['id']}/trainingData/")
    assert api.patch(model_url, json={"datasetId": good}).status_code == 422  # versions only, now


def test_a_versions_training_data_rules(emulator: Emulated, api: requests.Session, env_id: str, bundle: Path) -> None:
    """emulator/training_data.py's refusals, and holdout data beside training data."""
    model = create_model(api, emulator, isTrainingDataForVersionsPermanentlyEnabled=True)
    create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id)
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    training = f'{{"datasetId": "{good}"}}'

    def refused(**fields: str) -> str:
        response = create_version(api, emulator, model["id"], {}, method="PATCH", **fields)
        assert response.status_code == 422, response.text
        return str(response.json()["message"])

    assert "trainingData must be a JSON object" in refused(trainingData="{not json")
    assert "holdoutData must be a JSON object" in refused(trainingData=training, holdoutData="[1]")
    assert "keepTrainingHoldoutData cannot be true" in refused(trainingData=training, keepTrainingHoldoutData="true")
    assert "holdoutData needs trainingData" in refused(holdoutData=training)
    assert "trainingData.datasetId is required" in refused(trainingData='{"datasetName": "x"}')
    holdout = f'{{"datasetId": "{good}", "partitionColumn": "x1", "datasetName": "held"}}'
    version = create_version(api, emulator, model["id"], {}, method="PATCH", trainingData=training, holdoutData=holdout)
    assert version.status_code == 201, version.text
    assert version.json()["holdoutData"] == {
        "datasetId": good,
        "datasetVersionId": version.json()["trainingData"]["datasetVersionId"],
        "datasetName": "held",
        "partitionColumn": "x1",
    }


# -- feature impact ------------------------------------------------------------------------------


@SUBPROCESS_ONLY
def test_feature_impact_lifecycle(emulator: Emulated, api: requests.Session, env_id: str, bundle: Path) -> None:
    model = create_model(api, emulator, isTrainingDataForVersionsPermanentlyEnabled=True)
    version = create_version(api, emulator, model["id"], bundle_files(bundle), baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/featureImpact/")
    assert api.get(url).status_code == 422  # no training data
    assert api.post(url, json={}).status_code == 422
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    version = create_version(api, emulator, model["id"], {}, method="PATCH", trainingData=f'{{"datasetId": "{good}"}}')
    version = version.json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/featureImpact/")
    assert api.get(url).status_code == 404  # nothing computed yet
    too_many = api.post(url, json={"rowCount": 121})
    assert too_many.status_code == 422 and "120 rows" in too_many.json()["message"]
    assert api.post(url, json={"rowCount": 5}).status_code == 422  # the schema's minimum
    started = api.post(url, json={"rowCount": 100})
    assert started.status_code == 202 and started.headers["Location"].endswith(f"{started.json()['statusId']}/")
    again = api.post(url, json={"rowCount": 100})
    assert again.status_code == 404 and again.json()["errors"]["jobId"] == started.json()["statusId"]
    done = finished(api, started.headers["Location"])
    assert done.status_code == 303, done.text
    impact = api.get(done.headers["Location"]).json()
    assert_conforms(impact, "FeatureImpactResponse")
    assert [i["featureName"] for i in impact["featureImpacts"][:2]] == ["x2", "x7"] and impact["rowCount"] == 100
    image = _image_id(version["id"], version["baseEnvironmentVersionId"])
    image_url = emulator.url(f"customInferenceImages/{image}/featureImpact/")
    assert api.get(image_url).json() == impact
    assert api.get(emulator.url(f"customInferenceImages/{ABSENT}/featureImpact/")).status_code == 404
    recomputed = api.post(image_url, json={})  # another rowCount (the default): computed again
    assert recomputed.status_code == 202 and finished(api, recomputed.headers["Location"]).status_code == 303
    assert api.get(url).json()["rowCount"] is None


@SUBPROCESS_ONLY
def test_feature_impact_of_a_failing_model_is_an_error_status(
    emulator: Emulated, api: requests.Session, env_id: str, bundle: Path
) -> None:
    model = create_model(api, emulator)
    files = {
        **bundle_files(bundle),
        "custom.py": b"def load_model(d):\n    return None\n\ndef predict(m, X):\n    1/0\n",
    }
    version = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    assigned = api.patch(emulator.url(f"customModels/{model['id']}/trainingData/"), json={"datasetId": good})
    finished(api, assigned.headers["Location"])
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/featureImpact/")
    status = finished(api, api.post(url, json={}).headers["Location"]).json()
    assert status["status"] == "ERROR" and "failed to predict" in status["message"]
    assert api.get(url).status_code == 404
    assert api.post(url, json={}).status_code == 202  # a failed computation can be started again


# -- copies and templates ------------------------------------------------------------------------


def test_copy_has_every_version_and_file(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator, name="original", userProvidedId="copied-model")
    create_version(api, emulator, model["id"], {"a.py": b"1"}, baseEnvironmentId=env_id)
    create_version(api, emulator, model["id"], {"b.py": b"2"}, method="PATCH", isMajorUpdate="false")
    response = api.post(emulator.url("customModels/fromCustomModel/"), json={"customModelId": model["id"]})
    assert response.status_code == 201
    copy = response.json()
    assert_conforms(copy, "CustomModelResponse")
    assert copy["id"] != model["id"] and copy["name"] == "original" and "userProvidedId" not in copy
    versions = api.get(emulator.url(f"customModels/{copy['id']}/versions/")).json()["data"]
    assert [v["label"] for v in versions] == ["v1.1", "v1.0"] and copy["latestVersion"]["id"] == versions[0]["id"]
    assert {i["filePath"] for i in versions[0]["items"]} == {"a.py", "b.py"}
    zipped = api.get(emulator.url(f"customModels/{copy['id']}/download/"))
    assert zipped.status_code == 200 and b"b.py" in zipped.content
    assert api.post(emulator.url("customModels/fromCustomModel/"), json={"customModelId": ABSENT}).status_code == 404
    assert api.post(emulator.url("customModels/fromCustomModel/"), json={}).status_code == 422


def test_models_from_templates(emulator: Emulated, api: requests.Session) -> None:
    listed = api.get(emulator.url("customTemplates/")).json()
    subtypes = {t["templateSubType"] for t in listed["data"]}
    assert subtypes == {
        "Regression", "Binary", "Multiclass", "Anomaly", "TextGeneration", "Unstructured", "Transform", "GeoPoint",
        "VectorDatabase", "AgenticWorkflow",
    }  # fmt: skip
    template = next(t for t in listed["data"] if t["templateSubType"] == "Binary")
    assert api.get(emulator.url(f"customTemplates/{template['id']}/")).json() == template
    url = emulator.url("customModels/fromModelTemplate/")
    body = {"templateId": template["id"], "resourceBundleId": "cpu.small", "secretConfigId": "none"}
    assert api.post(url, json={"templateId": template["id"]}).status_code == 422  # all three are required
    assert api.post(url, json={**body, "templateId": ABSENT}).status_code == 422
    response = api.post(url, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert_conforms(created, "CustomModelCreateFromTemplateResponse")
    model = api.get(emulator.url(f"customModels/{created['customModelId']}/")).json()
    assert_conforms(model, "CustomModelResponse")
    assert model["targetType"] == "Binary" and model["template"]["templateId"] == template["id"]
    assert model["latestVersion"]["id"] == created["customModelVersionId"]
    assert {"custom.py", "start_server.sh", "model-metadata.yaml"} <= {
        i["filePath"] for i in model["latestVersion"]["items"]
    }


def test_r_templates_are_made_on_the_newest_r_environment(emulator: Emulated, api: requests.Session) -> None:
    """`cmkit init --language r`'s templates: none is seeded, so an uploaded R environment serves them."""
    template_id = next(t.id for t in bundle_templates() if t.name == "cmkit r regression model")
    listed = api.get(emulator.url("customTemplates/")).json()["data"]
    url = emulator.url("customModels/fromModelTemplate/")
    body = {"templateId": template_id, "resourceBundleId": "cpu.small", "secretConfigId": "none"}
    if template_id not in {t["id"] for t in listed}:  # the module's first R environment: listed once it is built
        refused = api.post(url, json=body)
        assert refused.status_code == 422 and "cmkit env push templates/environments/r" in refused.json()["message"]
    created = api.post(emulator.url("executionEnvironments/"), json={"name": "R", "programmingLanguage": "r"})
    env_id = created.json()["id"]
    versions = emulator.url(f"executionEnvironments/{env_id}/versions/")
    context = zip_bytes({"Dockerfile": b"FROM x\n"}, ZIP_STORED)
    uploaded = api.post(versions, files={"docker_context": ("r.zip", context), "label": (None, b"r")})
    wait_for(lambda: build_status(api, uploaded.headers["Location"]))
    template = api.get(emulator.url(f"customTemplates/{template_id}/")).json()
    assert template["defaultEnvironment"]["environmentId"] == env_id
    assert template_id in {t["id"] for t in api.get(emulator.url("customTemplates/")).json()["data"]}
    made = api.post(url, json=body)
    assert made.status_code == 201, made.text
    model = api.get(emulator.url(f"customModels/{made.json()['customModelId']}/")).json()
    assert model["language"] == "r" and model["latestVersion"]["baseEnvironmentId"] == env_id
    assert "custom.R" in {i["filePath"] for i in model["latestVersion"]["items"]}


# -- versions from a repository ------------------------------------------------------------------


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_versions_from_a_local_git_repository(
    emulator: Emulated, api: requests.Session, env_id: str, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "model").mkdir(parents=True)
    (repo / "model" / "custom.py").write_text("v = 1\n")
    (repo / "README.md").write_text("outside the model\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "model" / "extra.py").write_text("w = 2\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "two")
    admin = emulator.root + "__emulator__/repositories"
    assert api.post(admin, json={"path": str(tmp_path)}).status_code == 422  # not a repository
    registered = api.post(admin, json={"path": str(repo), "name": "models"})
    assert registered.status_code == 201
    repository_id = registered.json()["id"]
    assert [r["id"] for r in api.get(admin).json()["data"]] == [repository_id]
    model = create_model(api, emulator)
    url = emulator.url(f"customModels/{model['id']}/versions/fromRepository/")
    body = {"repositoryId": repository_id, "sourcePath": "model/", "baseEnvironmentId": env_id, "ref": first}
    assert api.post(url, json={**body, "repositoryId": ABSENT}).status_code == 422
    assert api.post(url, json={**body, "ref": "no-such-branch"}).status_code == 422
    assert api.post(url, json={**body, "sourcePath": "nowhere"}).status_code == 422
    accepted = api.post(url, json=body)
    assert accepted.status_code == 202
    done = finished(api, accepted.headers["Location"])
    assert done.status_code == 303, done.text
    version = api.get(done.headers["Location"]).json()
    assert_conforms(version, "CustomModelVersionResponse")
    [item] = version["items"]
    assert (item["filePath"], item["fileSource"], item["commitSha"]) == ("custom.py", "remote", first)
    assert (item["repositoryFilePath"], item["repositoryName"]) == ("model/custom.py", "models")
    patched = api.patch(
        url, json={"repositoryId": repository_id, "sourcePath": ["model/extra.py"], "isMajorUpdate": False}
    )
    version = api.get(finished(api, patched.headers["Location"]).headers["Location"]).json()
    assert version["label"] == "v1.1" and {i["filePath"] for i in version["items"]} == {"custom.py", "extra.py"}
    by_path = {i["filePath"]: i for i in version["items"]}
    assert by_path["custom.py"]["commitSha"] == first and by_path["extra.py"]["commitSha"] == git(
        repo, "rev-parse", "HEAD"
    )


# -- stored jobs: conversions, prediction explanations -------------------------------------------


def test_conversions_are_recorded_and_say_they_did_not_run(
    emulator: Emulated, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)
    version = create_version(api, emulator, model["id"], {"main.sas": b"data x;"}, baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/conversions/")
    assert api.post(url, json={"mainProgramItemId": ABSENT}).status_code == 422
    started = api.post(url, json={"mainProgramItemId": version["items"][0]["id"]})
    assert started.status_code == 202
    assert_conforms(started.json(), "CustomModelConversionAsyncOperationResponse")
    status = finished(api, started.headers["Location"]).json()
    assert status["status"] == "ERROR" and "SAS" in status["message"]
    conversion = api.get(url + f"{started.json()['conversionId']}/").json()
    assert_conforms(conversion, "ConversionResponse")
    assert conversion["conversionSucceeded"] is False and conversion["conversionInProgress"] is False
    listed = api.get(url, params={"isLatest": "true"}).json()
    assert_conforms(listed, "ConversionListResponse")
    assert [c["id"] for c in listed["data"]] == [conversion["id"]]
    stopped = api.delete(url + f"{conversion['id']}/")
    assert stopped.status_code == 422 and "not active" in stopped.json()["message"]
    assert api.get(url + f"{ABSENT}/").status_code == 404


def test_prediction_explanations_initialization(
    emulator: Emulated, api: requests.Session, env_id: str, bundle: Path
) -> None:
    model = create_model(api, emulator)
    version = create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/predictionExplanationsInitialization/")
    deprecated = emulator.url("customModels/predictionExplanationsInitialization/")
    body = {"customModelId": model["id"], "customModelVersionId": version["id"]}
    assert api.post(url).status_code == 422  # no training data
    good = dataset_id(emulator, api, (bundle / "data" / "train.csv").read_bytes())
    finished(
        api,
        api.patch(emulator.url(f"customModels/{model['id']}/trainingData/"), json={"datasetId": good}).headers[
            "Location"
        ],
    )
    for response in (api.post(url), api.post(deprecated, json=body)):
        assert response.status_code == 202, response.text
        assert finished(api, response.headers["Location"]).json()["status"] == "COMPLETED"
    assert api.post(deprecated, json={**body, "environmentVersionId": ABSENT}).status_code == 422
    assert api.post(deprecated, json={"customModelId": model["id"]}).status_code == 422


# -- environments: sharing and permanent deletion ------------------------------------------------


def test_environment_access_control(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    url = emulator.url(f"executionEnvironments/{env_id}/accessControl/")
    owners = api.get(url).json()
    assert_conforms(owners, "SharingListResponse")
    owner = owners["data"][0]["username"]
    assert api.patch(url, json={"data": [{"username": "ana@example.com", "role": "CONSUMER"}]}).status_code == 204
    only = api.get(url, params={"username": "ana@example.com"}).json()["data"]
    assert [(e["username"], e["role"], e["canShare"]) for e in only] == [("ana@example.com", "CONSUMER", False)]
    assert api.get(url, params={"username": owner, "userId": "x"}).status_code == 400
    assert api.patch(url, json={"data": [{"username": owner, "role": None}]}).status_code == 409
    assert api.patch(url, json={"data": [{"username": "ana@example.com", "role": None}]}).status_code == 204
    assert len(api.get(url).json()["data"]) == 1
    assert api.get(emulator.url(f"executionEnvironments/{ABSENT}/accessControl/")).status_code == 404


def test_permanent_deletion_of_environments(emulator: Emulated, api: requests.Session) -> None:
    created = api.post(emulator.url("executionEnvironments/"), json={"name": "doomed", "programmingLanguage": "python"})
    ident = created.json()["id"]
    url = emulator.url("executionEnvironmentsPermadelete/")
    assert api.post(url, json={"executionEnvironmentIds": [ident]}).status_code == 409  # not soft-deleted
    assert api.post(url, json={"executionEnvironmentIds": [ident, ABSENT]}).status_code == 404
    assert api.post(url, json={"executionEnvironmentIds": []}).status_code == 422  # minItems 1
    assert api.delete(emulator.url(f"executionEnvironments/{ident}/")).status_code == 204
    assert api.post(url, json={"executionEnvironmentIds": [ident]}).status_code == 204
    assert api.post(url, json={"executionEnvironmentIds": [ident]}).status_code == 404  # gone for good
    again = api.post(emulator.url("executionEnvironments/"), json={"name": "reborn", "environmentId": ident})
    assert again.status_code == 201  # the id is free again


@pytest.mark.slow
def test_a_stop_during_feature_impact_is_recorded_and_it_can_run_again(tmp_path: Path, bundle: Path) -> None:
    first = Emulator(tmp_path / "data").start()
    try:
        api = first.session()
        model = create_model(api, first)
        hanging = {**bundle_files(bundle), "start_server.sh": b"#!/bin/sh\nexec sleep 600\n"}
        version = create_version(api, first, model["id"], hanging, baseEnvironmentId=first.info["environmentId"])
        version_id = version.json()["id"]
        good = dataset_id(first, api, (bundle / "data" / "train.csv").read_bytes())
        finished(
            api,
            api.patch(first.url(f"customModels/{model['id']}/trainingData/"), json={"datasetId": good}).headers[
                "Location"
            ],
        )
        url = first.url(f"customModels/{model['id']}/versions/{version_id}/featureImpact/")
        status_url = api.post(url, json={}).headers["Location"]
        wait_for(lambda: api.get(status_url, allow_redirects=False).json()["status"] == "RUNNING")
        assert api.get(url).status_code == 422  # in progress
    finally:
        assert first.stop() == 0
    second = Emulator(tmp_path / "data").start()
    try:
        api = second.session()
        status = api.get(second.url(status_url.split("/api/v2/", 1)[1]), allow_redirects=False).json()
        assert status["status"] in ("ABORTED", "ERROR") and "stopped" in status["message"]
        url = second.url(f"customModels/{model['id']}/versions/{version_id}/featureImpact/")
        gone = api.get(url)
        assert gone.status_code == 404 and "stopped" in gone.json()["message"]
        assert api.post(url, json={}).status_code == 202  # can be started again
    finally:
        second.stop()
