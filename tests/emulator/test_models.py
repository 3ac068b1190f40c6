"""Custom models and versions (cmkit/emulator/models.py): the refusals a client meets, through Flask's test client.

Target settings (targetType or the legacy supports* flags), a version's environment (id, version
id, built or not), its fields (requiredMetadataValues, duplicate paths, filesToDelete), a
requirements.txt that is not text, downloads of a model without versions, and dependency builds
cancelled or refused. The happy paths are in tests/emulator/test_api.py.
"""

from __future__ import annotations

import pytest
import requests

from tests.emulator.test_api import create_model, create_version
from tests.support.emulator_support import upload_files, wait_for
from tests.support.flask_transport import InProcessEmulator

ABSENT = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def env_id(emulator: InProcessEmulator) -> str:
    return str(emulator.info["environmentId"])


def test_the_target_type_comes_from_targettype_or_one_legacy_flag(
    emulator: InProcessEmulator, api: requests.Session
) -> None:
    url = emulator.url("customModels/")
    base = {"customModelType": "inference", "name": "flags", "targetName": "y"}
    legacy = api.post(url, json={**base, "supportsRegression": True})
    assert legacy.status_code == 201 and legacy.json()["targetType"] == "Regression"
    both = api.post(url, json={**base, "supportsRegression": True, "supportsBinaryClassification": True})
    assert both.status_code == 422 and both.json()["errors"] == {"targetType": "conflicting supports* flags"}
    conflict = api.post(url, json={**base, "targetType": "Binary", "supportsRegression": True})
    assert conflict.status_code == 422 and "conflicts with supportsRegression" in conflict.json()["message"]
    neither = api.post(url, json=base)
    assert neither.status_code == 422 and neither.json()["errors"] == {"targetType": "is required"}
    # Nothing is ever deployed in the emulator: asking for deployed models finds none.
    deployed = api.get(url, params={"isDeployed": "true", "searchFor": "flags"}).json()
    assert deployed["data"] == [] and api.get(url, params={"searchFor": "flags"}).json()["count"] >= 1


def test_a_version_needs_a_built_environment_that_exists(
    emulator: InProcessEmulator, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)

    def refused(**fields: str) -> dict[str, str]:
        response = create_version(api, emulator, model["id"], {"a.py": b""}, **fields)
        assert response.status_code == 422, (fields, response.text)
        return dict(response.json()["errors"])

    assert refused() == {"baseEnvironmentId": "is required"}
    assert refused(baseEnvironmentId=ABSENT) == {"baseEnvironmentId": "not found"}
    assert refused(baseEnvironmentVersionId=ABSENT) == {"baseEnvironmentVersionId": "not found"}
    seeded = api.get(emulator.url(f"executionEnvironments/{env_id}/")).json()["latestVersion"]["id"]
    other = api.post(emulator.url("executionEnvironments/"), json={"name": "unbuilt", "programmingLanguage": "python"})
    other_id = other.json()["id"]
    mismatch = refused(baseEnvironmentId=other_id, baseEnvironmentVersionId=seeded)
    assert mismatch == {"baseEnvironmentVersionId": "belongs to another environment"}
    assert refused(baseEnvironmentId=other_id) == {"baseEnvironmentId": "not built"}
    first = create_version(api, emulator, model["id"], {"a.py": b""}, baseEnvironmentVersionId=seeded)
    assert first.status_code == 201 and first.json()["baseEnvironmentId"] == env_id
    # Later versions keep the latest version's environment unless told otherwise.
    second = create_version(api, emulator, model["id"], {"b.py": b""}, isMajorUpdate="false")
    assert second.status_code == 201, second.text
    assert (second.json()["baseEnvironmentVersionId"], second.json()["label"]) == (seeded, "v1.1")


def test_version_fields_and_file_sets_are_checked(
    emulator: InProcessEmulator, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)
    url = emulator.url(f"customModels/{model['id']}/versions/")
    fields = [("isMajorUpdate", (None, b"true")), ("baseEnvironmentId", (None, env_id.encode()))]
    twice = api.post(url, files=fields + upload_files({"a.py": b"1"}) + upload_files({"a.py": b"2"}))
    assert twice.status_code == 422 and twice.json()["errors"] == {"filePath": "duplicate path a.py"}
    not_json = create_version(
        api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id, requiredMetadataValues="{"
    )
    assert not_json.status_code == 422 and "requiredMetadataValues" in not_json.json()["errors"]
    values = '[{"fieldName": "owner", "value": "team"}]'
    kept = create_version(
        api, emulator, model["id"], {"a.py": b""}, baseEnvironmentId=env_id, requiredMetadataValues=values
    )
    assert kept.status_code == 201 and kept.json()["requiredMetadataValues"] == [
        {"fieldName": "owner", "value": "team"}
    ]
    fresh = create_model(api, emulator)
    no_previous = create_version(
        api, emulator, fresh["id"], {"a.py": b""}, baseEnvironmentId=env_id, filesToDelete=ABSENT
    )
    assert no_previous.status_code == 422 and no_previous.json()["errors"] == {"filesToDelete": "no previous version"}
    unknown = create_version(api, emulator, model["id"], {}, method="PATCH", filesToDelete=ABSENT)
    assert unknown.status_code == 422 and unknown.json()["errors"] == {"filesToDelete": "unknown item id"}


def test_a_requirements_file_that_is_not_text_has_no_dependencies_and_its_build_fails(
    emulator: InProcessEmulator, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)
    files = {"requirements.txt": b"\xff\xfe numpy\n"}
    version = create_version(api, emulator, model["id"], files, baseEnvironmentId=env_id).json()
    assert version["dependencies"] == []
    url = emulator.url(f"customModels/{model['id']}/versions/{version['id']}/dependencyBuild/")
    assert api.post(url).status_code == 202
    # An empty requirements text has nothing to install: the build checks it and succeeds.
    done = wait_for(lambda: (b := api.get(url).json())["buildStatus"] in ("success", "failed") and b, interval=0.02)
    assert done["buildStatus"] == "success"


def test_downloads_and_dependency_builds_of_what_does_not_exist(
    emulator: InProcessEmulator, api: requests.Session, env_id: str
) -> None:
    model = create_model(api, emulator)
    empty = api.get(emulator.url(f"customModels/{model['id']}/download/"))
    assert empty.status_code == 422 and "has no versions to download" in empty.json()["message"]
    version = create_version(api, emulator, model["id"], {"requirements.txt": b"six\n"}, baseEnvironmentId=env_id)
    url = emulator.url(f"customModels/{model['id']}/versions/{version.json()['id']}/dependencyBuild/")
    assert api.delete(url).status_code == 422  # never started: nothing to cancel
    assert api.get(emulator.url(f"customModels/{model['id']}/versions/{ABSENT}/dependencyBuild/")).status_code == 404
    assert api.get(emulator.url(f"customModels/{ABSENT}/versions/")).status_code == 404
