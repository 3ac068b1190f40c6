"""Model packages, registered models and deployments (cmkit/emulator/modelpackages.py,
deployments.py, serving.py) through Flask's test client.

The deployed model runs for real: the emulator's process runtime starts the version's
start_server.sh (write_stdlib_bundle's standard-library server, predicting 3*x2 - 2*x7) and
predictions go through it. The official client's flow and the comparison with `cmkit predict`
on a real model server are in tests/emulator/test_deploy_client.py (slow tier).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from cmkit.emulator import deployments
from cmkit.emulator.serving import prediction_row
from cmkit_runtime.target import Target
from cmkit_runtime.target_types import TargetType
from tests.emulator.test_api import create_model, create_version
from tests.support.bundles import stdlib_files, training_csv
from tests.support.emulator_support import ended, ingested
from tests.support.flask_transport import InProcessEmulator

ABSENT = "0123456789abcdef01234567"


def model_version(
    emulator: InProcessEmulator, api: requests.Session, files: dict[str, bytes] | None = None
) -> tuple[str, dict[str, Any]]:
    model = create_model(api, emulator)
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, model["id"], files or stdlib_files(), baseEnvironmentId=env_id)
    assert version.status_code == 201, version.text
    return str(model["id"]), dict(version.json())


def package(emulator: InProcessEmulator, api: requests.Session, version_id: str, **fields: Any) -> dict[str, Any]:
    made = api.post(
        emulator.url("modelPackages/fromCustomModelVersion/"), json={"customModelVersionId": version_id, **fields}
    )
    assert made.status_code == 201, made.text
    assert ended(api, made.headers["Location"]).headers["Location"].endswith(f"modelPackages/{made.json()['id']}/")
    return dict(made.json())


def deploy(emulator: InProcessEmulator, api: requests.Session, package_id: str, **fields: Any) -> requests.Response:
    body = {"modelPackageId": package_id, "label": "d", **fields}
    started = api.post(emulator.url("deployments/fromModelPackage/"), json=body)
    assert started.status_code == 202, started.text
    return ended(api, started.headers["Location"])


def rows(count: int = 5) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(training_csv().decode())))[:count]


def test_a_version_is_packaged_registered_deployed_and_predicts(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    model_id, version = model_version(emulator, api)
    assert (version["versionMajor"], version["versionMinor"]) == (1, 0)  # DataRobot's first number
    made = package(emulator, api, version["id"], name="pkg one")
    assert made["modelId"] == version["id"] and made["target"]["name"] == "y" and made["registeredModelVersion"] == 1
    frozen = api.get(emulator.url(f"customModels/{model_id}/versions/{version['id']}/")).json()
    assert frozen["isFrozen"] is True
    # After a package, a minor update is still the next major: the packaged version is frozen.
    env_id = str(emulator.info["environmentId"])
    second = create_version(
        api, emulator, model_id, {}, method="PATCH", isMajorUpdate="false", baseEnvironmentId=env_id
    )
    assert (second.json()["versionMajor"], second.json()["versionMinor"]) == (2, 0)
    third = create_version(api, emulator, model_id, {}, method="PATCH", isMajorUpdate="false", baseEnvironmentId=env_id)
    assert (third.json()["versionMajor"], third.json()["versionMinor"]) == (2, 1)

    registered = api.get(emulator.url("registeredModels/"), params={"search": "pkg one"}).json()["data"]
    assert [entry["name"] for entry in registered] == ["pkg one"]
    registered_id = registered[0]["id"]
    assert api.get(emulator.url(f"registeredModels/{registered_id}/")).json()["lastVersionNum"] == 1
    patched = api.patch(emulator.url(f"registeredModels/{registered_id}/"), json={"description": "d", "isGlobal": True})
    assert patched.status_code == 200 and patched.json()["isGlobal"] is True
    assert api.patch(emulator.url(f"registeredModels/{registered_id}/"), json={"isGlobal": "yes"}).status_code == 422
    assert api.patch(emulator.url(f"registeredModels/{registered_id}/"), json={"name": 3}).status_code == 422
    again = package(emulator, api, third.json()["id"], registeredModelId=registered_id)
    versions = api.get(emulator.url(f"registeredModels/{registered_id}/versions/")).json()["data"]
    assert [entry["registeredModelVersion"] for entry in versions] == [2, 1]
    one = api.get(emulator.url(f"registeredModels/{registered_id}/versions/{again['id']}/"))
    assert one.status_code == 200 and one.json()["modelId"] == third.json()["id"]
    listed = api.get(emulator.url("modelPackages/"), json={"modelId": version["id"]}).json()["data"]
    assert [entry["id"] for entry in listed] == [made["id"]]
    assert api.get(emulator.url("modelPackages/"), params={"search": "PKG"}).json()["count"] >= 1
    assert api.get(emulator.url(f"modelPackages/{made['id']}/")).json()["name"] == "pkg one"

    done = deploy(emulator, api, made["id"], userProvidedId="ns/dep-1", importance="HIGH")
    assert done.status_code == 303
    deployment = api.get(done.headers["Location"]).json()
    assert deployment["status"] == "active" and deployment["importance"] == "HIGH"
    assert deployment["model"]["customModelImage"]["customModelVersionId"] == version["id"]
    dep_id = deployment["id"]
    sample = rows()
    expected = [3 * float(row["x2"]) - 2 * float(row["x7"]) for row in sample]
    csv_text = training_csv().decode().splitlines()
    body = "\n".join(csv_text[: len(sample) + 1]).encode()
    by_csv = api.post(
        f"{emulator.root}predApi/v1.0/deployments/{dep_id}/predictions", data=body, headers={"Content-Type": "text/csv"}
    )
    assert by_csv.status_code == 200, by_csv.text
    got = by_csv.json()["data"]
    assert [entry["rowId"] for entry in got] == list(range(len(sample)))
    assert [entry["prediction"] for entry in got] == pytest.approx(expected)
    assert got[0]["predictionValues"] == [{"label": "y", "value": got[0]["prediction"]}]
    by_json = api.post(emulator.url(f"deployments/{dep_id}/predictions/"), json=sample)
    assert [entry["prediction"] for entry in by_json.json()["data"]] == pytest.approx(expected)
    by_file = api.post(emulator.url(f"deployments/{dep_id}/predictions/"), files={"file": ("rows.csv", body)})
    assert [entry["prediction"] for entry in by_file.json()["data"]] == pytest.approx(expected)
    assert api.post(emulator.url(f"deployments/{dep_id}/predictions/"), json={"x": 1}).status_code == 422
    assert (
        api.post(
            emulator.url(f"deployments/{dep_id}/predictions/"), data=b"{", headers={"Content-Type": "application/json"}
        ).status_code
        == 422
    )
    assert (
        api.post(
            emulator.url(f"deployments/{dep_id}/predictions/"), data=b"", headers={"Content-Type": "text/csv"}
        ).status_code
        == 422
    )
    assert (
        api.post(
            emulator.url(f"deployments/{dep_id}/predictions/"), data=b"a,b\n", headers={"Content-Type": "text/csv"}
        ).status_code
        == 422
    )

    with pytest.MonkeyPatch.context() as patch:  # the 50 MB limit, scaled down to this body
        patch.setattr(deployments, "MAX_PREDICTION_BYTES", len(body) - 1)
        too_big = api.post(emulator.url(f"deployments/{dep_id}/predictions/"), data=body)
    assert too_big.status_code == 413 and "at most" in too_big.json()["message"]
    search = api.get(emulator.url("deployments/"), params={"search": "D"}).json()["data"]
    assert dep_id in [entry["id"] for entry in search]
    assert (
        api.patch(emulator.url(f"deployments/{dep_id}/"), json={"label": "new", "description": None}).status_code == 204
    )
    assert api.patch(emulator.url(f"deployments/{dep_id}/"), json={"owner": "x"}).status_code == 422
    assert api.patch(emulator.url(f"deployments/{dep_id}/"), json={"importance": "HUGE"}).status_code == 422
    assert api.get(emulator.url(f"deployments/{dep_id}/")).json()["label"] == "new"

    settings_url = emulator.url(f"deployments/{dep_id}/settings/")
    assert api.get(settings_url).json()["targetDrift"] == {"enabled": False}
    changed = api.patch(settings_url, json={"targetDrift": {"enabled": True}, "associationId": {"columnNames": ["id"]}})
    assert changed.status_code == 202 and ended(api, changed.headers["Location"]).status_code == 303
    now = api.get(settings_url).json()
    assert now["targetDrift"] == {"enabled": True} and now["associationId"]["columnNames"] == ["id"]
    assert now["associationId"]["requiredInPredictionRequests"] is False
    assert api.patch(settings_url, json={"nope": {}}).status_code == 422
    assert api.patch(settings_url, json={"targetDrift": True}).status_code == 422

    # Replacing: validated, the new version launched, then swapped in.
    validation = api.post(emulator.url(f"deployments/{dep_id}/model/validation/"), json={"modelPackageId": again["id"]})
    assert validation.json()["status"] == "passing"
    replaced = api.patch(
        emulator.url(f"deployments/{dep_id}/model/"), json={"modelPackageId": again["id"], "reason": "ERRORS"}
    )
    assert replaced.status_code == 202 and ended(api, replaced.headers["Location"]).status_code == 303
    assert api.get(emulator.url(f"deployments/{dep_id}/")).json()["model"]["id"] == third.json()["id"]
    bad_reason = api.patch(
        emulator.url(f"deployments/{dep_id}/model/"), json={"modelPackageId": again["id"], "reason": "MOOD"}
    )
    assert bad_reason.status_code == 422
    again_prediction = api.post(emulator.url(f"deployments/{dep_id}/predictions/"), json=sample)
    assert [entry["prediction"] for entry in again_prediction.json()["data"]] == pytest.approx(expected)

    # Challengers: the champion first, then those added.
    challengers_url = emulator.url(f"deployments/{dep_id}/challengers/")
    assert [c["model"]["id"] for c in api.get(challengers_url).json()["data"]] == [third.json()["id"]]
    added = api.post(challengers_url, json={"modelPackageId": made["id"], "name": "c"})
    assert added.status_code == 202
    challenger_url = ended(api, added.headers["Location"]).headers["Location"]
    assert api.get(challenger_url).json()["model"]["id"] == version["id"]
    assert len(api.get(challengers_url).json()["data"]) == 2
    assert api.get(emulator.url(f"deployments/{dep_id}/challengers/{ABSENT}/")).status_code == 404

    # Actuals: the dataset and its columns are checked.
    dataset_id = ingested(emulator, api, b"id,y\n1,2\n")
    actuals_url = emulator.url(f"deployments/{dep_id}/actuals/fromDataset/")
    good = {"datasetId": dataset_id, "actualValueColumn": "y", "associationIdColumn": "id"}
    assert ended(api, api.post(actuals_url, json=good).headers["Location"]).status_code == 303
    assert api.post(actuals_url, json={**good, "actualValueColumn": "z"}).status_code == 422

    in_use = api.get(emulator.url("customModelDeployments/"), json={"customModelIds": [model_id]}).json()["data"]
    assert [entry["id"] for entry in in_use] == [dep_id] and in_use[0]["customModel"]["id"] == model_id
    assert api.get(emulator.url("customModelDeployments/"), params={"customModelIds": ABSENT}).json()["data"] == []
    requested = api.post(emulator.url(f"customModelDeployments/{dep_id}/logs/"))
    runtime_log = api.get(ended(api, requested.headers["Location"]).headers["Location"])
    assert runtime_log.status_code == 200 and "model loaded" in runtime_log.text
    assert "launching custom model" in api.get(emulator.url(f"customModelDeployments/{dep_id}/logs/")).text

    deployed_models = api.get(emulator.url("customModels/"), params={"isDeployed": "true"}).json()["data"]
    assert model_id in [entry["id"] for entry in deployed_models]
    assert api.get(emulator.url(f"customModels/{model_id}/")).json()["deploymentsCount"] == 1
    kept = api.delete(emulator.url(f"customModels/{model_id}/"))
    assert kept.status_code == 422 and "delete them first" in kept.json()["message"]
    assert api.delete(emulator.url(f"deployments/{dep_id}/")).status_code == 204
    assert api.get(emulator.url(f"deployments/{dep_id}/")).status_code == 404
    assert api.get(emulator.url(f"customModels/{model_id}/")).json()["deploymentsCount"] == 0
    undeployed = api.get(emulator.url("customModels/"), params={"isDeployed": "false"}).json()["data"]
    assert model_id in [entry["id"] for entry in undeployed]
    assert api.post(emulator.url(f"deployments/{dep_id}/predictions/"), json=sample).status_code == 404
    assert api.get(emulator.url(f"customModelDeployments/{dep_id}/logs/")).status_code == 200  # kept
    assert api.get(emulator.url(f"customModelDeployments/{ABSENT}/logs/")).status_code == 404


def test_a_model_that_does_not_start_errors_its_deployment(emulator: InProcessEmulator, api: requests.Session) -> None:
    broken = {"start_server.sh": b"#!/bin/sh\necho 'ERROR: no model here' >&2\nexit 3\n"}
    _, version = model_version(emulator, api, broken)
    made = package(emulator, api, version["id"])
    failed = deploy(emulator, api, made["id"])
    assert failed.status_code == 200 and failed.json()["status"] == "ERROR"
    assert "did not start" in failed.json()["message"]
    listed = api.get(emulator.url("deployments/")).json()["data"]
    errored = next(entry for entry in listed if entry["modelPackage"]["id"] == made["id"])
    assert errored["status"] == "errored"
    assert "ERROR" in api.get(emulator.url(f"customModelDeployments/{errored['id']}/logs/")).text
    refused = api.post(emulator.url(f"deployments/{errored['id']}/predictions/"), json=rows(1))
    assert refused.status_code == 422 and "errored" in refused.json()["message"]


def test_refusals(emulator: InProcessEmulator, api: requests.Session) -> None:
    _, version = model_version(emulator, api)
    made = package(emulator, api, version["id"], registeredModelName="refusals-registered")
    create = emulator.url("modelPackages/fromCustomModelVersion/")
    assert api.post(create, json={"customModelVersionId": ABSENT}).status_code == 422
    assert api.post(create, json={}).status_code == 422
    taken = api.post(create, json={"customModelVersionId": version["id"], "registeredModelName": "refusals-registered"})
    assert taken.status_code == 422 and "already exists" in taken.json()["message"]
    both = api.post(
        create, json={"customModelVersionId": version["id"], "registeredModelName": "x", "registeredModelId": ABSENT}
    )
    assert both.status_code == 422
    assert (
        api.post(create, json={"customModelVersionId": version["id"], "registeredModelId": ABSENT}).status_code == 404
    )
    # An unnamed registered model takes the package's name, numbered when it is taken.
    first, second = (
        package(emulator, api, version["id"], name="same"),
        package(emulator, api, version["id"], name="same"),
    )
    names = {
        api.get(emulator.url(f"registeredModels/{p['registeredModelId']}/")).json()["name"] for p in (first, second)
    }
    assert names == {"same", "same (2)"}
    assert api.get(emulator.url(f"modelPackages/{ABSENT}/")).status_code == 404

    create_url = emulator.url("deployments/fromModelPackage/")
    assert api.post(create_url, json={"modelPackageId": ABSENT, "label": "x"}).status_code == 422
    assert api.post(create_url, json={"modelPackageId": made["id"]}).status_code == 422
    assert (
        api.post(create_url, json={"modelPackageId": made["id"], "label": "x", "importance": "HUGE"}).status_code == 422
    )
    elsewhere = {"modelPackageId": made["id"], "label": "x", "predictionEnvironmentId": ABSENT}
    assert api.post(create_url, json=elsewhere).status_code == 422
    assert deploy(emulator, api, made["id"], userProvidedId="ns/refusals").status_code == 303
    duplicate = api.post(create_url, json={"modelPackageId": made["id"], "label": "x", "userProvidedId": "ns/refusals"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.json()["message"]

    environments = api.get(
        emulator.url("predictionEnvironments/"), params={"supportedModelFormats": "customModel"}
    ).json()
    assert environments["count"] == 1
    env_id = environments["data"][0]["id"]
    assert api.get(emulator.url(f"predictionEnvironments/{env_id}/")).status_code == 200
    assert api.get(emulator.url(f"predictionEnvironments/{ABSENT}/")).status_code == 404
    assert api.get(emulator.url("predictionEnvironments/"), params={"search": "nothing"}).json()["count"] == 0


def test_a_target_mismatch_fails_validation_and_replacement(emulator: InProcessEmulator, api: requests.Session) -> None:
    _, version = model_version(emulator, api)
    deployed = package(emulator, api, version["id"])
    done = deploy(emulator, api, deployed["id"])
    dep_id = api.get(done.headers["Location"]).json()["id"]
    other = create_model(api, emulator, targetName="other")
    env_id = str(emulator.info["environmentId"])
    other_version = create_version(api, emulator, other["id"], stdlib_files(), baseEnvironmentId=env_id).json()
    mismatched = package(emulator, api, other_version["id"])
    validation = api.post(
        emulator.url(f"deployments/{dep_id}/model/validation/"), json={"modelPackageId": mismatched["id"]}
    )
    assert validation.json()["status"] == "failing" and "target" in validation.json()["message"]
    replaced = api.patch(emulator.url(f"deployments/{dep_id}/model/"), json={"modelPackageId": mismatched["id"]})
    assert replaced.status_code == 422
    assert api.delete(emulator.url(f"deployments/{dep_id}/")).status_code == 204


def test_a_dataset_is_deleted_then_gone(emulator: InProcessEmulator, api: requests.Session) -> None:
    dataset_id = ingested(emulator, api, b"a,b\n1,2\n")
    assert api.delete(emulator.url(f"datasets/{dataset_id}/")).status_code == 204
    gone = api.get(emulator.url(f"datasets/{dataset_id}/"))
    assert gone.status_code == 410 and "deleted" in gone.json()["message"]
    assert api.delete(emulator.url(f"datasets/{dataset_id}/")).status_code == 410
    assert api.delete(emulator.url(f"datasets/{ABSENT}/")).status_code == 404


def test_the_server_version_is_the_one_the_official_client_expects(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    # Read from the installed client's _version.py: importing datarobot costs a third of a second.
    spec = importlib.util.find_spec("datarobot")
    assert spec is not None and spec.origin is not None
    source = (Path(spec.origin).parent / "_version.py").read_text()
    expected = re.search(r'__expected_server_version__ = "([\d.]+)"', source)
    assert expected is not None
    version = api.get(emulator.url("version/")).json()
    assert f"{version['major']}.{version['minor']}" == expected.group(1)


@pytest.mark.parametrize(
    ("target", "value", "threshold", "prediction"),
    [
        (Target(TargetType.BINARY, ("yes", "no"), "t"), [0.7, 0.3], 0.5, "yes"),
        (Target(TargetType.BINARY, ("yes", "no"), "t"), [0.7, 0.3], 0.8, "no"),
        (Target(TargetType.MULTICLASS, ("a", "b", "c"), "t"), [0.2, 0.5, 0.3], 0.5, "b"),
    ],
)
def test_a_classifier_row_names_its_class_and_every_probability(
    target: Target, value: list[float], threshold: float, prediction: str
) -> None:
    row = prediction_row(3, value, target, threshold)
    assert row["rowId"] == 3 and row["prediction"] == prediction
    assert row["predictionValues"] == [
        {"label": label, "value": p} for label, p in zip(target.labels, value, strict=True)
    ]
    assert ("predictionThreshold" in row) is (target.type is TargetType.BINARY)


UNSTRUCTURED_SERVER = r"""
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/" + os.environ.get("URL_PREFIX", "").strip("/")
PREFIX = "" if PREFIX == "/" else PREFIX


class Model(BaseHTTPRequestHandler):
    def answer(self, code, payload, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.answer(200 if self.path == PREFIX + "/" else 404, b"{}", "application/json")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != PREFIX + "/predictUnstructured/" or body == b"fail":
            self.answer(500, b"no", "text/plain")
        else:
            self.answer(200, body.upper(), "text/plain; charset=utf-8")

    def log_message(self, format, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Model).serve_forever()
"""


def test_an_unstructured_deployment_answers_its_requests_as_the_model_does(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    model = create_model(api, emulator, targetType="Unstructured", targetName=None)
    files = {
        "start_server.sh": b'#!/bin/sh\nexec python "$(dirname "$0")/serve.py"\n',
        "serve.py": UNSTRUCTURED_SERVER.encode(),
    }
    env_id = str(emulator.info["environmentId"])
    version = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    done = deploy(emulator, api, package(emulator, api, version["id"])["id"])
    dep_id = api.get(done.headers["Location"]).json()["id"]
    url = f"{emulator.root}predApi/v1.0/deployments/{dep_id}/predictionsUnstructured"
    answer = api.post(url, data=b"hello", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200 and answer.content == b"HELLO"
    assert answer.headers["Content-Type"].startswith("text/plain")
    failed = api.post(url, data=b"fail", headers={"Content-Type": "text/plain"})
    assert failed.status_code == 422 and "HTTP 500" in failed.json()["message"]
    as_rows = api.post(emulator.url(f"deployments/{dep_id}/predictions/"), json=rows(1))
    assert as_rows.status_code == 422 and "predictionsUnstructured" in as_rows.json()["message"]
    structured = structured_deployment(emulator, api)
    wrong_route = api.post(f"{emulator.root}predApi/v1.0/deployments/{structured}/predictionsUnstructured", data=b"x")
    assert wrong_route.status_code == 422 and "structured" in wrong_route.json()["message"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deployments, "MAX_PREDICTION_BYTES", 2)
        assert api.post(url, data=b"hello").status_code == 413


def structured_deployment(emulator: InProcessEmulator, api: requests.Session) -> str:
    """A deployment of the stdlib model: its id."""
    _, version = model_version(emulator, api)
    done = deploy(emulator, api, package(emulator, api, version["id"])["id"])
    return str(api.get(done.headers["Location"]).json()["id"])
