"""The emulator's API (process runtime): resources, validation, pagination, errors.

Every test runs in-process, through Flask's test client (tests/support/flask_transport.py: the same
requests, encoded by requests, without a socket); the ones marked END_TO_END also run against
`cmkit emulator` in a subprocess over real HTTP (slow tier): transport, headers, absolute links,
background jobs and streaming uploads.

Responses are checked against the reference's response schemas, so the emulator's documents keep
the shape the seed describes (with the relaxations listed in RELAXED, each explained).
"""

from __future__ import annotations

import copy
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zipfile import ZIP_STORED

import psutil
import pytest
import requests
from jsonschema import Draft7Validator
from requests_toolbelt.multipart.encoder import MultipartEncoder

from cmkit.emulator.reference import load_reference
from tests.support.emulator_support import TOKEN, tar_bytes, upload_files, wait_for, zip_bytes
from tests.support.flask_transport import END_TO_END, SUBPROCESS_ONLY, Emulated, start

# Typed `object` in the reference, yet their descriptions say they can be empty: a model without
# versions has no latest version ("if this field is empty, the model is not ready for use"), and
# one not made from a template has none ("If not null, the template used...").
NULLABLE_BY_DESCRIPTION = ("if this field is empty", "If not null")
JSON_TYPE = "application/json"


def _relax(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _relax(value) for key, value in schema.items()}
        if any(phrase in str(schema.get("description", "")) for phrase in NULLABLE_BY_DESCRIPTION):
            return {"anyOf": [schema, {"type": "null"}]}
    elif isinstance(schema, list):
        return [_relax(item) for item in schema]
    return schema


def assert_conforms(document: Any, schema_name: str) -> None:
    schema = _relax(copy.deepcopy(load_reference().schema(schema_name)))
    errors = sorted(Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


@pytest.fixture(scope="module")
def emulator(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulated]:
    running = start(request, tmp_path_factory.mktemp("emulator"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(emulator: Emulated) -> requests.Session:
    return emulator.session()


@pytest.fixture(scope="module")
def env_id(emulator: Emulated) -> str:
    return str(emulator.info["environmentId"])


def create_model(api: requests.Session, emulator: Emulated, **fields: Any) -> dict[str, Any]:
    body = {"customModelType": "inference", "name": "m", "targetType": "Regression", "targetName": "y", **fields}
    response = api.post(emulator.url("customModels/"), json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def create_version(
    api: requests.Session,
    emulator: Emulated,
    model_id: str,
    files: dict[str, bytes],
    method: str = "POST",
    **fields: str,
) -> requests.Response:
    data = [(k, (None, v.encode())) for k, v in {"isMajorUpdate": "true", **fields}.items()]
    return api.request(method, emulator.url(f"customModels/{model_id}/versions/"), files=data + upload_files(files))


# -- transport -----------------------------------------------------------------------------------


@END_TO_END
def test_version_and_ping_with_both_auth_schemes(emulator: Emulated) -> None:
    for scheme in ("Bearer", "Token", "token"):
        response = emulator.session(scheme).get(emulator.url("version/"))
        assert response.status_code == 200 and response.headers["Content-Type"] == JSON_TYPE
        assert response.json()["versionString"].count(".") == 2
    assert emulator.session().get(emulator.url("ping/")).json() == {"response": "pong"}


@END_TO_END
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}],
)
def test_missing_or_wrong_token_is_401_json(emulator: Emulated, headers: dict[str, str]) -> None:
    anonymous = emulator.session()
    del anonymous.headers["Authorization"]
    response = anonymous.get(emulator.url("customModels/"), headers=headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == JSON_TYPE
    assert "token" in response.json()["message"]


def test_admin_routes_need_the_token_too(emulator: Emulated) -> None:
    anonymous = emulator.session()
    del anonymous.headers["Authorization"]
    assert anonymous.get(emulator.root + "__emulator__/requests").status_code == 401


def test_unknown_routes_and_ids_are_404_json(emulator: Emulated, api: requests.Session) -> None:
    for path in (
        "nowhere/",
        "customModels/0123456789abcdef01234567/",
        "executionEnvironments/nope/",
        "customModelTests/nope/",
        "status/nope/",
        "datasets/nope/",
    ):
        response = api.get(emulator.url(path))
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == JSON_TYPE
        assert response.json()["message"]


def test_wrong_method_is_405_json(emulator: Emulated, api: requests.Session) -> None:
    response = api.put(emulator.url("customModels/"))
    assert response.status_code == 405 and response.headers["Content-Type"] == JSON_TYPE


# -- custom models -------------------------------------------------------------------------------


def test_create_get_patch_delete_model(emulator: Emulated, api: requests.Session) -> None:
    model = create_model(api, emulator, name="crud", description="d", language="python")
    assert_conforms(model, "CustomModelResponse")
    assert model["latestVersion"] is None and model["supportsRegression"] and not model["supportsBinaryClassification"]
    fetched = api.get(emulator.url(f"customModels/{model['id']}/")).json()
    assert fetched["name"] == "crud" and fetched["createdBy"]
    patched = api.patch(emulator.url(f"customModels/{model['id']}/"), json={"name": "renamed", "description": ""})
    assert patched.status_code == 200 and patched.json()["name"] == "renamed"  # the service answers 200
    assert api.delete(emulator.url(f"customModels/{model['id']}/")).status_code == 204
    assert api.get(emulator.url(f"customModels/{model['id']}/")).status_code == 404


def test_binary_and_multiclass_models_keep_their_labels(emulator: Emulated, api: requests.Session) -> None:
    binary = create_model(
        api, emulator, targetType="Binary", positiveClassLabel="yes", negativeClassLabel="no", predictionThreshold=0.3
    )
    assert (binary["positiveClassLabel"], binary["negativeClassLabel"], binary["predictionThreshold"]) == (
        "yes",
        "no",
        0.3,
    )
    assert binary["supportsBinaryClassification"]
    multi = create_model(api, emulator, targetType="Multiclass", classLabels=["a", "b", "c"])
    assert multi["classLabels"] == ["a", "b", "c"]
    assert_conforms(multi, "CustomModelResponse")


def test_legacy_supports_flags_give_the_target_type(emulator: Emulated, api: requests.Session) -> None:
    body = {"customModelType": "inference", "name": "legacy", "targetName": "y", "supportsRegression": True}
    assert api.post(emulator.url("customModels/"), json=body).json()["targetType"] == "Regression"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "targetType": "Regression", "targetName": "y"}, "customModelType"),  # required
        ({"customModelType": "inference", "targetType": "Regression", "targetName": "y"}, "name"),  # required
        ({"customModelType": "inference", "name": "x", "targetType": "Nope", "targetName": "y"}, "targetType"),  # enum
        ({"customModelType": "inference", "name": "x" * 256, "targetType": "Regression", "targetName": "y"}, "name"),
        (
            {
                "customModelType": "inference",
                "name": "x",
                "targetType": "Binary",
                "targetName": "y",
                "positiveClassLabel": "a",
                "negativeClassLabel": "b",
                "predictionThreshold": 1.5,
            },
            "predictionThreshold",
        ),
        (
            {
                "customModelType": "inference",
                "name": "x",
                "targetType": "Regression",
                "targetName": "y",
                "maximumMemory": 1024,
            },
            "maximumMemory",
        ),  # minimum
        (
            {"customModelType": "inference", "name": "x", "targetType": "Regression", "targetName": "y", "replicas": 0},
            "replicas",
        ),  # exclusiveMinimum
        (
            {
                "customModelType": "inference",
                "name": "x",
                "targetType": "Regression",
                "targetName": "y",
                "userProvidedId": "u" * 101,
            },
            "userProvidedId",
        ),  # maxLength
        (
            {"customModelType": "inference", "name": "x", "targetType": "Binary", "targetName": "y"},
            "positiveClassLabel",
        ),
        ({"customModelType": "inference", "name": "x", "targetType": "Multiclass", "targetName": "y"}, "classLabels"),
        ({"customModelType": "inference", "name": "x", "targetType": "Regression"}, "targetName"),
    ],
)
def test_invalid_model_bodies_are_422_naming_the_field(
    emulator: Emulated, api: requests.Session, body: dict[str, Any], field: str
) -> None:
    response = api.post(emulator.url("customModels/"), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == JSON_TYPE
    document = response.json()
    assert field in document["errors"] and field in document["message"]


def test_malformed_json_is_422(emulator: Emulated, api: requests.Session) -> None:
    response = api.post(emulator.url("customModels/"), data=b"{not json", headers={"Content-Type": JSON_TYPE})
    assert response.status_code == 422 and "JSON" in response.json()["message"]


def test_duplicate_user_provided_id_is_422(emulator: Emulated, api: requests.Session) -> None:
    create_model(api, emulator, userProvidedId="stable-id-1")
    response = api.post(
        emulator.url("customModels/"),
        json={
            "customModelType": "inference",
            "name": "again",
            "targetType": "Regression",
            "targetName": "y",
            "userProvidedId": "stable-id-1",
        },
    )
    assert response.status_code == 422 and "userProvidedId" in response.json()["errors"]


def test_list_filters_search_and_order(emulator: Emulated, api: requests.Session) -> None:
    first = create_model(api, emulator, name="Zebra finder", description="stripes")
    second = create_model(
        api,
        emulator,
        name="other",
        targetType="Binary",
        positiveClassLabel="1",
        negativeClassLabel="0",
        language="Zebra-lang",
    )
    found = api.get(emulator.url("customModels/"), params={"searchFor": "zebra", "limit": 100}).json()
    assert [m["id"] for m in found["data"]] == [second["id"], first["id"]]  # newest first by default
    oldest = api.get(emulator.url("customModels/"), params={"searchFor": "ZEBRA", "orderBy": "created"}).json()
    assert [m["id"] for m in oldest["data"]] == [first["id"], second["id"]]
    binary = api.get(emulator.url("customModels/"), params={"targetType": "Binary", "searchFor": "zebra"}).json()
    assert [m["id"] for m in binary["data"]] == [second["id"]]
    deployed = api.get(emulator.url("customModels/"), params={"isDeployed": "true"}).json()
    assert deployed["totalCount"] == 0
    assert_conforms(found, "CustomModelListResponse")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"limit": "ten"}, "limit"),
        ({"orderBy": "name"}, "orderBy"),
        ({"targetType": "regression"}, "targetType"),
        ({"customModelType": "x"}, "customModelType"),
    ],
)
def test_invalid_query_parameters_are_422(
    emulator: Emulated, api: requests.Session, params: dict[str, Any], field: str
) -> None:
    response = api.get(emulator.url("customModels/"), params=params)
    assert response.status_code == 422 and field in response.json()["errors"]


@END_TO_END
def test_pagination_has_absolute_next_and_previous(emulator: Emulated, api: requests.Session) -> None:
    ids = [create_model(api, emulator, name=f"paged-{i}", description="pagination")["id"] for i in range(5)]
    seen: list[str] = []
    url: str | None = emulator.url("customModels/?searchFor=pagination&limit=2")
    pages = []
    while url:
        page = api.get(url).json()
        pages.append(page)
        seen += [m["id"] for m in page["data"]]
        url = page["next"]
    assert seen == list(reversed(ids)) and len(pages) == 3
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    assert pages[1]["next"].startswith(emulator.endpoint) and "searchFor=pagination" in pages[1]["next"]
    assert api.get(pages[1]["previous"]).json()["data"] == pages[0]["data"]
    assert [p["count"] for p in pages] == [2, 2, 1] and {p["totalCount"] for p in pages} == {5}


# -- versions ------------------------------------------------------------------------------------


@END_TO_END
def test_version_upload_items_dependencies_and_download(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    files = {
        "start_server.sh": b"#!/bin/sh\nexec true\n",
        "requirements.txt": b"pandas>=1.0,<3\nscikit-learn==1.4.*\n",
        "src/model.py": b"x = 1\n",
    }
    response = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id, isMajorUpdate="True")
    assert response.status_code == 201, response.text
    version = response.json()
    assert_conforms(version, "CustomModelVersionResponse")
    assert (version["versionMajor"], version["versionMinor"], version["label"]) == (1, 0, "v1.0")
    assert {i["filePath"] for i in version["items"]} == set(files)
    assert {i["fileName"] for i in version["items"]} == {"start_server.sh", "requirements.txt", "model.py"}
    assert version["dependencies"] == [
        {
            "packageName": "pandas",
            "constraints": [{"constraintType": ">=", "version": "1.0"}, {"constraintType": "<", "version": "3"}],
            "line": "pandas>=1.0,<3",
            "lineNumber": 1,
        },
        {
            "packageName": "scikit-learn",
            "constraints": [{"constraintType": ">=", "version": "1.4"}, {"constraintType": "<", "version": "1.5"}],
            "line": "scikit-learn==1.4.*",
            "lineNumber": 2,
        },
    ]
    assert version["baseEnvironmentId"] == env_id and version["baseEnvironmentVersionId"]
    archive = api.get(emulator.url(f"customModels/{model['id']}/versions/{version['id']}/download/"))
    assert archive.status_code == 200 and "attachment" in archive.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        assert {name: bundle.read(name) for name in bundle.namelist()} == files
    latest = api.get(emulator.url(f"customModels/{model['id']}/download/"))
    assert latest.content == archive.content
    model = api.get(emulator.url(f"customModels/{model['id']}/")).json()
    assert model["latestVersion"]["id"] == version["id"]


def test_invalid_requirements_give_empty_dependencies(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    files = {"requirements.txt": b"pandas>=1.0\n-e git+https://example.com/x.git\n"}
    version = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    assert version["dependencies"] == []


def test_patch_carries_files_over_replaces_adds_and_deletes(
    emulator: Emulated, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)
    files = {"a.py": b"a", "b.py": b"b", "c.py": b"c"}
    first = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    ids = {i["filePath"]: i["id"] for i in first["items"]}
    response = create_version(
        api,
        emulator,
        model["id"],
        {"b.py": b"B", "d/e.py": b"e"},
        method="PATCH",
        isMajorUpdate="FALSE",
        filesToDelete=ids["c.py"],
    )
    assert response.status_code == 201, response.text
    second = response.json()
    assert (second["versionMajor"], second["versionMinor"]) == (1, 1)  # minor, whatever the case
    items = {i["filePath"]: i["id"] for i in second["items"]}
    assert set(items) == {"a.py", "b.py", "d/e.py"}
    assert items["a.py"] == ids["a.py"] and items["b.py"] != ids["b.py"]  # unchanged files keep their item
    assert second["baseEnvironmentId"] == env_id  # inherited
    archive = api.get(emulator.url(f"customModels/{model['id']}/versions/{second['id']}/download/")).content
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        assert bundle.read("b.py") == b"B" and bundle.read("a.py") == b"a"
    # JSON without files: delete only.
    third = api.patch(
        emulator.url(f"customModels/{model['id']}/versions/"),
        json={"isMajorUpdate": False, "filesToDelete": [items["a.py"]]},
    )
    assert third.status_code == 201, third.text
    assert {i["filePath"] for i in third.json()["items"]} == {"b.py", "d/e.py"}
    listed = api.get(emulator.url(f"customModels/{model['id']}/versions/")).json()
    assert [v["label"] for v in listed["data"]] == ["v1.2", "v1.1", "v1.0"]
    assert [v["isFrozen"] for v in listed["data"]] == [False, True, True]
    assert_conforms(listed, "CustomModelVersionListResponse")


@pytest.mark.parametrize(
    ("fields", "files", "field"),
    [
        ({"isMajorUpdate": "maybe"}, {"a.py": b"a"}, "isMajorUpdate"),
        ({"isMajorUpdate": "true", "maximumMemory": "12"}, {}, "maximumMemory"),
        ({"isMajorUpdate": "true", "maximumMemory": "lots"}, {}, "maximumMemory"),
        ({"isMajorUpdate": "true", "replicas": "9"}, {}, "replicas"),
        ({"isMajorUpdate": "true", "networkEgressPolicy": "SOME"}, {}, "networkEgressPolicy"),
        ({}, {"a.py": b"a"}, "isMajorUpdate"),
    ],
)
def test_invalid_version_uploads_are_422(
    emulator: Emulated, api: requests.Session, env_id: str, fields: dict[str, str], files: dict[str, bytes], field: str
) -> None:
    model = create_model(api, emulator)
    data = [(k, (None, v.encode())) for k, v in {"baseEnvironmentId": env_id, **fields}.items()]
    response = api.post(emulator.url(f"customModels/{model['id']}/versions/"), files=data + upload_files(files))
    assert response.status_code == 422, response.text
    assert field in response.json()["errors"]


def test_version_settings_are_typed_and_inherited(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    first = create_version(
        api,
        emulator,
        model["id"],
        {},
        baseEnvironmentId=env_id,
        maximumMemory=str(2**30),
        replicas="2",
        networkEgressPolicy="NONE",
    ).json()
    assert (first["maximumMemory"], first["replicas"], first["networkEgressPolicy"]) == (2**30, 2, "NONE")
    second = create_version(api, emulator, model["id"], {"x.py": b"x"}, method="PATCH").json()
    assert (second["maximumMemory"], second["replicas"], second["networkEgressPolicy"]) == (2**30, 2, "NONE")


def test_version_upload_mistakes(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    url = emulator.url(f"customModels/{model['id']}/versions/")
    base = [("isMajorUpdate", (None, b"true")), ("baseEnvironmentId", (None, env_id.encode()))]
    unpaired = api.post(url, files=[*base, ("file", ("a.py", b"a"))])
    assert unpaired.status_code == 422 and "filePath" in unpaired.json()["errors"]
    outside = api.post(url, files=base + upload_files({"../evil.py": b"x"}))
    assert outside.status_code == 422
    twice = api.post(url, files=base + upload_files({"a.py": b"1"}) + upload_files({"a.py": b"2"}))
    assert twice.status_code == 422
    no_env = api.post(url, files=[("isMajorUpdate", (None, b"true"))])
    assert no_env.status_code == 422 and "baseEnvironmentId" in no_env.json()["errors"]
    unknown_env = api.post(url, files=[("isMajorUpdate", (None, b"true")), ("baseEnvironmentId", (None, b"nope"))])
    assert unknown_env.status_code == 422
    missing_model = api.post(emulator.url("customModels/0123456789abcdef01234567/versions/"), files=base)
    assert missing_model.status_code == 404
    first = api.post(url, files=base).json()
    bad_delete = api.patch(url, json={"isMajorUpdate": "true", "filesToDelete": ["not-an-item"]})
    assert bad_delete.status_code == 422 and "filesToDelete" in bad_delete.json()["errors"]
    assert api.get(emulator.url(f"customModels/{model['id']}/versions/nope/")).status_code == 404
    assert first["items"] == []


def test_more_than_1000_files_is_rejected(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    files = {f"f{i}.txt": b"" for i in range(1001)}
    response = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id)
    assert response.status_code in (413, 422), response.text
    assert response.headers["Content-Type"] == JSON_TYPE


def test_version_description_patch(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    version = create_version(api, emulator, model["id"], {}, baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/")
    response = api.patch(url, json={"description": "tuned"})
    assert response.status_code == 200 and response.json()["description"] == "tuned"
    assert api.patch(url, json={"description": "x" * 10001}).status_code == 422


# -- dependency builds (process runtime: checked, not installed) ---------------------------------


def build_status(api: requests.Session, url: str) -> dict[str, Any] | None:
    document = api.get(url).json()
    return document if document["buildStatus"] in ("success", "failed") else None


@END_TO_END
def test_dependency_build_lifecycle(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    version = create_version(
        api, emulator, model["id"], {"requirements.txt": b"six==1.16.0\n"}, baseEnvironmentId=env_id
    ).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/dependencyBuild/")
    not_started = api.get(url)
    assert not_started.status_code == 422 and "has not been started" in not_started.json()["message"]
    assert api.get(url.replace("dependencyBuild/", "dependencyBuildLog/")).status_code == 422
    started = api.post(url)
    assert started.status_code == 202 and "Location" not in started.headers
    assert started.json()["buildStatus"] in ("submitted", "processing") and started.json()["buildEnd"] is None
    assert_conforms(started.json(), "BaseDependencyBuildMetadataResponse")
    done = wait_for(lambda: build_status(api, url))
    assert done["buildStatus"] == "success" and done["buildLogLocation"].startswith(emulator.endpoint)
    log = api.get(url.replace("dependencyBuild/", "dependencyBuildLog/")).json()
    assert "six==1.16.0" in log["data"]
    assert api.delete(url).status_code == 409  # already ended


def test_dependency_build_fails_on_invalid_requirements(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    files = {"requirements.txt": b"six==1.16.0\nnumpy!=1.0\n"}
    version = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/dependencyBuild/")
    api.post(url)
    assert wait_for(lambda: build_status(api, url))["buildStatus"] == "failed"
    assert "requirements.txt:2" in api.get(url.replace("dependencyBuild/", "dependencyBuildLog/")).json()["data"]


def test_dependency_build_needs_requirements(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    version = create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id).json()
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/dependencyBuild/")
    assert api.post(url).status_code == 422
    assert api.delete(url).status_code == 422  # nothing to cancel


# -- environments --------------------------------------------------------------------------------


def test_environment_crud_and_versions(emulator: Emulated, api: requests.Session) -> None:
    created = api.post(emulator.url("executionEnvironments/"), json={"name": "env", "programmingLanguage": "python"})
    assert created.status_code == 201 and created.headers["Location"].startswith(emulator.endpoint)
    env = api.get(created.headers["Location"]).json()
    assert "latestVersion" not in env  # none yet; DataRobot's client takes absent, not null
    url = emulator.url(f"executionEnvironments/{env['id']}/versions/")
    for name, archive in (
        ("ctx.zip", zip_bytes({"Dockerfile": b"FROM x\n"}, ZIP_STORED)),
        ("ctx.tar.gz", tar_bytes({"Dockerfile": b"FROM x\n", "a/b.txt": b"b"})),
    ):
        response = api.post(url, files={"docker_context": (name, archive), "label": (None, b"v")})
        assert response.status_code == 202, response.text
        version_url = response.headers["Location"]
        version = wait_for(lambda u=version_url: build_status(api, u))
        assert version["buildStatus"] == "success" and version["imageId"]
        assert_conforms(version, "ExecutionEnvironmentVersionResponse")
        log = api.get(version_url + "buildLog/").json()
        assert set(log) == {"log", "error"} and log["error"] == ""
        assert api.get(version_url + "download/").content == archive
    listed = api.get(url).json()
    assert listed["totalCount"] == 2 and listed["data"][0]["dockerContextSize"]
    env = api.get(created.headers["Location"]).json()
    assert env["latestSuccessfulVersion"]["id"] == listed["data"][0]["id"]
    assert_conforms(env, "ExecutionEnvironmentResponse")
    patched = api.patch(created.headers["Location"], json={"description": "new"})
    assert patched.status_code == 200 and patched.json()["description"] == "new"
    assert api.delete(created.headers["Location"]).status_code == 204
    assert api.get(created.headers["Location"]).status_code == 404


def test_environment_version_rejections(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    url = emulator.url(f"executionEnvironments/{env_id}/versions/")
    no_dockerfile = api.post(
        url, files={"docker_context": ("c.zip", zip_bytes({"sub/Dockerfile": b"FROM x"}, ZIP_STORED))}
    )
    assert no_dockerfile.status_code == 422 and "Dockerfile" in no_dockerfile.json()["message"]
    not_archive = api.post(url, files={"docker_context": ("c.zip", b"plain text")})
    assert not_archive.status_code == 422
    missing = api.post(url, files={"label": (None, b"x")})
    assert missing.status_code == 422
    long_label = api.post(
        url, files={"docker_context": ("c.zip", zip_bytes({"Dockerfile": b""}, ZIP_STORED)), "label": (None, b"l" * 51)}
    )
    assert long_label.status_code == 422 and "label" in long_label.json()["errors"]
    assert (
        api.post(emulator.url("executionEnvironments/"), json={"name": "x", "programmingLanguage": "cobol"}).status_code
        == 422
    )
    taken = api.post(emulator.url("executionEnvironments/"), json={"name": "dup", "environmentId": env_id})
    assert taken.status_code == 409


def test_seeded_environment_is_listed_and_built(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    listed = api.get(emulator.url("executionEnvironments/"), params={"searchFor": "python 3.11"}).json()
    assert env_id in [e["id"] for e in listed["data"]]
    assert_conforms(listed, "ExecutionEnvironmentListResponse")


# -- datasets, statuses, model tests, misc -------------------------------------------------------


def upload_dataset(emulator: Emulated, api: requests.Session, content: bytes, name: str = "d.csv") -> requests.Response:
    return api.post(emulator.url("datasets/fromFile/"), files={"file": (name, content)}, allow_redirects=False)


@END_TO_END
def test_dataset_upload_status_redirects(emulator: Emulated, api: requests.Session) -> None:
    response = upload_dataset(emulator, api, b"a,b,y\n1,2,3\n4,5,6\n")
    assert response.status_code == 202
    status_url = response.headers["Location"]

    def redirected() -> requests.Response | None:
        polled = api.get(status_url, allow_redirects=False)
        return polled if polled.status_code == 303 else None

    location = wait_for(redirected).headers["Location"]
    dataset = api.get(location).json()
    assert dataset["datasetId"] == response.json()["catalogId"] and dataset["rowCount"] == 2
    assert dataset["processingState"] == "COMPLETED"


def test_dataset_that_is_not_csv_ends_in_error(emulator: Emulated, api: requests.Session) -> None:
    status_url = upload_dataset(emulator, api, b"\xff\xfe\x00garbage").headers["Location"]
    status = wait_for(lambda: (s := api.get(status_url, allow_redirects=False).json())["status"] == "ERROR" and s)
    assert "CSV" in status["message"]
    assert upload_dataset.__name__ and api.post(emulator.url("datasets/fromFile/")).status_code == 422


def test_model_test_validation(emulator: Emulated, api: requests.Session, env_id: str) -> None:
    model = create_model(api, emulator)
    version = create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id).json()
    url = emulator.url("customModelTests/")
    base = {"customModelId": model["id"], "customModelVersionId": version["id"]}
    assert api.post(url, json={"customModelId": model["id"]}).status_code == 422  # version required
    assert api.post(url, json=base).status_code == 422  # a structured model needs a dataset
    assert api.post(url, json={**base, "datasetId": "0123456789abcdef01234567"}).status_code == 404
    bad = api.post(url, json={**base, "datasetId": "x", "configuration": {"longRunningService": "warn"}})
    assert bad.status_code == 422 and "configuration.longRunningService" in bad.json()["errors"]
    assert api.post(url, json={**base, "customModelId": "0123456789abcdef01234567"}).status_code == 404
    listed = api.get(url)  # customModelId is required here
    assert listed.status_code == 422 and "customModelId" in listed.json()["errors"]
    assert api.get(url, params={"customModelId": model["id"]}).json()["data"] == []
    assert api.get(emulator.url("customModelTests/nope/tail/")).status_code == 404
    assert api.delete(emulator.url("customModelTests/nope/")).status_code == 404


def test_limits_and_access_control(emulator: Emulated, api: requests.Session) -> None:
    limits = api.get(emulator.url("customModelLimits/")).json()
    assert_conforms(limits, "CustomModelResourceLimits")
    model = create_model(api, emulator)
    url = emulator.url(f"customModels/{model['id']}/accessControl/")
    owners = api.get(url).json()
    assert_conforms(owners, "CustomModelAccessControlListResponse")
    assert [e["role"] for e in owners["data"]] == ["OWNER"]
    added = api.patch(url, json={"data": [{"username": "friend@example.com", "role": "USER"}]})
    assert added.status_code == 204
    assert {e["username"] for e in api.get(url).json()["data"]} == {owners["data"][0]["username"], "friend@example.com"}
    orphan = api.patch(url, json={"data": [{"username": owners["data"][0]["username"], "role": None}]})
    assert orphan.status_code == 409
    assert api.patch(url, json={"data": [{"username": "x", "role": "KING"}]}).status_code == 422
    assert api.patch(url, json={}).status_code == 422


@END_TO_END
def test_every_json_response_has_exact_content_type(emulator: Emulated, api: requests.Session) -> None:
    for path in ("version/", "customModels/", "executionEnvironments/", "customModelLimits/"):
        assert api.get(emulator.url(path)).headers["Content-Type"] == JSON_TYPE


@SUBPROCESS_ONLY
def test_large_upload_is_streamed_to_disk_and_journaled(
    emulator: Emulated, api: requests.Session, env_id: str, tmp_path: Path
) -> None:
    size = 128 << 20
    model = create_model(api, emulator)
    artifact = tmp_path / "artifact.bin"
    with artifact.open("wb") as handle:
        for _ in range(size >> 20):
            handle.write(b"\x5a" * (1 << 20))
    api.delete(emulator.root + "__emulator__/requests")
    server = psutil.Process(emulator.process.pid)  # type: ignore[union-attr]
    baseline = server.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.memory_info().rss)
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with artifact.open("rb") as handle:
            encoder = MultipartEncoder(
                fields=[
                    ("isMajorUpdate", "true"),
                    ("baseEnvironmentId", env_id),
                    ("file", ("artifact.bin", handle)),
                    ("filePath", "artifact.bin"),
                ]
            )
            response = api.post(
                emulator.url(f"customModels/{model['id']}/versions/"),
                data=encoder,
                headers={"Content-Type": encoder.content_type},
            )
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 201, response.text
    assert peak[0] - baseline < size // 4  # the body went to disk, not memory
    journal = api.get(emulator.root + "__emulator__/requests").json()["requests"]
    upload = [e for e in journal if e["method"] == "POST"][-1]
    assert upload["status"] == 201 and upload["bytesReceived"] == encoder.len
    blobs = list((Path(emulator.info["dataDir"]) / "blobs").rglob("*"))
    assert any(p.is_file() and p.stat().st_size == size for p in blobs)
    assert not list((Path(emulator.info["dataDir"]) / "tmp").glob("upload-*"))  # staging cleaned up
    assert json.loads(response.text)["items"][0]["filePath"] == "artifact.bin"
