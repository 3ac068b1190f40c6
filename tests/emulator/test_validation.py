"""The reference the emulator enforces: extraction from the seed, query tables, form typing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.reference import load_reference
from cmkit.emulator.validation import check_body, check_query, coerce_form
from tests.conftest import REPO

SEED = REPO / "tools" / "reference" / "datarobot-custom-models-api.txt"


def test_committed_reference_matches_the_seed() -> None:
    command = [sys.executable, str(REPO / "tools" / "extract_api_reference.py"), str(SEED), "--check"]
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0


def test_reference_has_every_route_and_schema_it_names() -> None:
    reference = load_reference()
    assert len(reference.routes) == 54 and len(reference.schemas) == 68
    versions = reference.route("POST", "customModels/{customModelId}/versions/")
    assert versions.body == "CustomModelVersionCreate" and versions.body_format == "multipart"
    assert versions.statuses == {201, 403, 404, 413, 422}
    tail = reference.route("GET", "customModelTests/{customModelTestId}/tail/")
    (lines,) = tail.query
    assert (lines.minimum, lines.maximum, lines.default, lines.required) == (1, 1000, 100, True)


def test_query_defaults_types_enums_and_ranges() -> None:
    reference = load_reference()
    models = reference.route("GET", "customModels/")
    assert check_query(models, {}) == {"offset": 0, "limit": 20}  # what the official client relies on
    assert check_query(models, {"offset": "5", "limit": "7", "orderBy": "-updated", "junk": "x"}) == {
        "offset": 5,
        "limit": 7,
        "orderBy": "-updated",
    }
    for bad in ({"limit": "x"}, {"offset": "-1"}, {"orderBy": "name"}, {"isDeployed": "yes"}):
        with pytest.raises(ErrorResponse) as raised:
            check_query(models, bad)
        assert raised.value.status == 422 and set(raised.value.errors or {}) == set(bad)
    tail = reference.route("GET", "customModelTests/{customModelTestId}/tail/")
    assert check_query(tail, {}) == {"lines": 100}
    with pytest.raises(ErrorResponse) as raised:
        check_query(tail, {"lines": "1001"})
    assert raised.value.status == 400  # the reference documents 400 for this route, not 422
    tests = reference.route("GET", "customModelTests/")
    with pytest.raises(ErrorResponse):
        check_query(tests, {})  # customModelId is required and has no default


def test_multipart_fields_are_typed_from_the_schema() -> None:
    reference = load_reference()
    form = {
        "isMajorUpdate": ["false"],
        "maximumMemory": ["1073741824"],
        "replicas": ["2"],
        "requiresHa": ["True"],
        "filePath": ["a.py", "b/c.py"],
        "filesToDelete": ["x"],
        "gitModelVersion": ['{"refName": "main"}'],
        "keepTrainingHoldoutData": ["False"],
    }
    fields = coerce_form(reference, "CustomModelVersionCreateFromLatest", form)
    assert fields == {
        "isMajorUpdate": "false",
        "maximumMemory": 1073741824,
        "replicas": 2,
        "requiresHa": True,
        "filePath": ["a.py", "b/c.py"],
        "filesToDelete": ["x"],
        "gitModelVersion": {"refName": "main"},
        "keepTrainingHoldoutData": False,
    }
    with pytest.raises(ErrorResponse) as raised:
        check_body(reference, "CustomModelVersionCreateFromLatest", fields)
    assert "gitModelVersion.commitUrl" in (raised.value.errors or {})


def test_null_passes_enums_that_allow_null() -> None:
    reference = load_reference()
    body = {"data": [{"username": "someone", "role": None}]}
    assert check_body(reference, "SharingUpdateOrRemoveWithGrant", body) == body
    with pytest.raises(ErrorResponse):
        check_body(reference, "SharingUpdateOrRemoveWithGrant", {"data": [{"username": "x", "role": "KING"}]})
