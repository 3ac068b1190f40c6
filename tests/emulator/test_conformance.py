"""Conformance: schemathesis against the emulator's own OpenAPI document (issue 13, item 9).

The document is the one the emulator serves at /__emulator__/openapi.json (generated from the
vendored reference, deviations applied as docs/emulator.md lists them). Every operation gets a
bounded number of generated requests, valid and invalid, through the WSGI app in process: no
5xx, no response outside its schema, no wrong Content-Type.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zipfile import ZIP_STORED

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.support.emulator_support import TOKEN, FlaskEmulator, wait_for, zip_bytes

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATUSES: list[int] = []  # every status answered, to show the run really exercised the API


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskEmulator]:
    emulator = FlaskEmulator(tmp_path_factory.mktemp("conformance") / "data")
    yield emulator
    emulator.close()


def test_the_openapi_document_covers_the_implemented_routes(emu: FlaskEmulator) -> None:
    assert emu.client.get("/__emulator__/openapi.json").status_code == 401
    doc = emu.request("GET", "/__emulator__/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert ("POST", "/customModels/{customModelId}/versions/") in operations
    assert ("GET", "/customModelTests/{customModelTestId}/tail/") in operations
    # Every route of the reference's chapter is implemented now, feature impact included.
    assert any("featureImpact" in path for _, path in operations)
    assert len(operations) == 54
    listing = doc["paths"]["/customModels/"]["get"]
    assert {p["name"]: p["required"] for p in listing["parameters"]}["limit"] is False  # defaulted
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("ListResponse")


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(emu: FlaskEmulator) -> None:
    schema = schemathesis.openapi.from_wsgi("/__emulator__/openapi.json", emu.app, headers=AUTH)
    failures: dict[str, str] = {}
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        count += 1
        try:
            _exercise(operation, _resources(emu))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # schemathesis raises one failure group per operation
            failures[operation.label] = str(exc)[:3000]
    assert count >= 30 and len(STATUSES) >= count * 2, (count, len(STATUSES))
    print(f"{count} operations, {len(STATUSES)} requests, statuses {sorted(set(STATUSES))}")
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def _exercise(operation: Any, known: dict[str, str]) -> None:
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategy = operation.as_strategy(generation_mode=modes[0]) | operation.as_strategy(generation_mode=modes[1])
    # Random ids only ever meet 404s: as many cases again run on resources that exist.
    strategy = strategy | strategy.map(lambda case: _with_known_ids(case, known))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=AUTH, checks=CHECKS)
        STATUSES.append(response.status_code)

    run()


def _with_known_ids(case: Any, known: dict[str, str]) -> Any:
    if case.path_parameters:
        case.path_parameters = {name: known.get(name, value) for name, value in case.path_parameters.items()}
    return case


def _resources(emu: FlaskEmulator) -> dict[str, str]:
    """Fresh resources of every kind (earlier operations may have deleted or changed the last ones)."""
    env_id = emu.request("POST", "executionEnvironments/", json={"name": "e"}).get_json()["id"]
    context = {"docker_context": (io.BytesIO(zip_bytes({"Dockerfile": b"FROM scratch\n"}, ZIP_STORED)), "c.zip")}
    env_version = emu.request("POST", f"executionEnvironments/{env_id}/versions/", data=context).get_json()["id"]
    path = f"executionEnvironments/{env_id}/versions/{env_version}/"
    wait_for(lambda: emu.request("GET", path).get_json()["buildStatus"] == "success", 30)
    model_id = emu.model()
    files = {"start_server.sh": b"#!/bin/sh\nexit 3\n", "requirements.txt": b"six==1.16.0\n"}
    version = emu.version(model_id, files, environment_id=env_id).get_json()
    emu.request("POST", f"customModels/{model_id}/versions/{version['id']}/dependencyBuild/")
    known = {
        "customModelId": model_id,
        "customModelVersionId": version["id"],
        "environmentId": env_id,
        "environmentVersionId": env_version,
    }
    test_id = _test_id(emu, model_id, version["id"])
    if test_id:
        known["customModelTestId"] = test_id
    return known


def _test_id(emu: FlaskEmulator, model_id: str, version_id: str) -> str | None:
    """A model test of the version (its server exits at once, so the test soon fails)."""
    dataset_id = getattr(emu, "_dataset_id", None)
    if dataset_id is None:
        upload = emu.request("POST", "datasets/fromFile/", data={"file": (io.BytesIO(b"x,y\n1,2\n3,4\n"), "d.csv")})
        dataset_id = upload.get_json()["catalogId"]
        wait_for(lambda: emu.request("GET", f"datasets/{dataset_id}/").get_json()["processingState"] == "COMPLETED")
        emu._dataset_id = dataset_id  # type: ignore[attr-defined]
    body = {"customModelId": model_id, "customModelVersionId": version_id, "datasetId": dataset_id}
    if emu.request("POST", "customModelTests/", json=body).status_code != 202:
        return None
    listed = emu.request("GET", f"customModelTests/?customModelId={model_id}").get_json()["data"]
    return str(listed[0]["id"]) if listed else None


def test_a_schema_violation_would_be_found(tmp_path: Path) -> None:
    """The harness is not blind: a response breaking its schema is reported."""
    emulator = FlaskEmulator(tmp_path / "data")
    try:
        schema = schemathesis.openapi.from_wsgi("/__emulator__/openapi.json", emulator.app, headers=AUTH)
        operation = schema["/customModelLimits/"]["GET"]
        case = operation.Case()
        response = case.call(headers=AUTH)
        case.validate_response(response, checks=CHECKS)  # conforms
        broken = case.call(headers=AUTH)
        broken.content = b'{"maxCustomModelTestingParallelUsers": "many"}'
        with pytest.raises(BaseException) as raised:
            case.validate_response(broken, checks=CHECKS)
        assert "Response violates schema" in str(raised.value)
    finally:
        emulator.close()
