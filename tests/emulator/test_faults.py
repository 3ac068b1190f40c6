"""Fault injection and the request journal, as reliability tests use them.

Rules and the journal are the app's own (its WSGI middleware): those tests run in-process and,
in the slow tier, against a served emulator too; the command-line fault flags and a dropped
connection need the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.emulator_support import Emulator
from tests.support.flask_transport import END_TO_END, Emulated, start

MODEL = {"customModelType": "inference", "name": "m", "targetType": "Regression", "targetName": "y"}


@pytest.fixture
def emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulated]:
    running = start(request, tmp_path / "data")
    yield running
    running.stop()


def admin(emulator: Emulated, path: str) -> str:
    return f"{emulator.root}__emulator__/{path}"


def count_models(emulator: Emulated) -> int:
    return int(emulator.session().get(emulator.url("customModels/")).json()["totalCount"])


@pytest.mark.slow
def test_fault_rate_answers_before_anything_happens(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path / "data", extra=["--fault-rate", "1", "--fault-status", "503"]).start()
    try:
        api = emulator.session()
        for _ in range(3):
            response = api.post(emulator.url("customModels/"), json=MODEL)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert response.headers["Content-Type"] == "application/json"
            assert "fault" in response.json()["message"]
        # The admin routes are never faulted: switch the rate off and look.
        settings = api.put(admin(emulator, "faults"), json={"rate": 0}).json()
        assert settings["rate"] == 0 and settings["status"] == 503
        assert count_models(emulator) == 0  # the faulted POSTs created nothing
        journal = api.get(admin(emulator, "requests")).json()["requests"]
        assert [e["status"] for e in journal] == [503, 503, 503, 200]
    finally:
        emulator.stop()


@pytest.mark.slow
def test_seeded_fault_rate_fails_some_requests(tmp_path: Path) -> None:
    extra = ["--fault-rate", "0.5", "--fault-status", "502", "--fault-seed", "7"]
    emulator = Emulator(tmp_path / "data", extra=extra).start()
    try:
        api = emulator.session()
        codes = [api.get(emulator.url("ping/")).status_code for _ in range(40)]
        assert set(codes) == {200, 502}
    finally:
        emulator.stop()


@END_TO_END
def test_next_n_matching_requests_fail_then_pass(emulator: Emulated) -> None:
    api = emulator.session()
    rule = {"count": 2, "status": 429, "method": "POST", "path": "^/api/v2/customModels/$", "retryAfter": 3}
    created = api.post(admin(emulator, "faults"), json=rule)
    assert created.status_code == 201 and created.json()["remaining"] == 2
    assert api.get(emulator.url("customModels/")).status_code == 200  # GET does not match
    first = api.post(emulator.url("customModels/"), json=MODEL)
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert api.post(emulator.url("customModels/"), json=MODEL).status_code == 429
    assert api.post(emulator.url("customModels/"), json=MODEL).status_code == 201
    assert count_models(emulator) == 1
    assert api.get(admin(emulator, "faults")).json()["rules"] == []


@pytest.mark.slow
@pytest.mark.parametrize("emulator", ["subprocess"], indirect=True)
def test_drop_closes_the_connection_without_processing(emulator: Emulated) -> None:
    api = emulator.session()
    api.post(admin(emulator, "faults"), json={"action": "drop", "method": "POST", "path": "customModels/$"})
    with pytest.raises(requests.ConnectionError):
        requests.post(emulator.url("customModels/"), json=MODEL, headers=api.headers)
    assert count_models(emulator) == 0
    assert api.post(emulator.url("customModels/"), json=MODEL).status_code == 201  # only once
    journal = api.get(admin(emulator, "requests")).json()["requests"]
    dropped = [e for e in journal if e["method"] == "POST"]
    assert [e["status"] for e in dropped] == [None, 201]


@END_TO_END
def test_journal_records_bytes_and_can_be_cleared(emulator: Emulated) -> None:
    api = emulator.session()
    payload = b"x" * 123_456
    files = [("isMajorUpdate", (None, b"true")), ("file", ("big.bin", payload)), ("filePath", (None, b"big.bin"))]
    request = requests.Request("POST", emulator.url("customModels/nope/versions/"), files=files, headers=api.headers)
    prepared = request.prepare()
    assert api.send(prepared).status_code == 404
    entries = api.get(admin(emulator, "requests")).json()["requests"]
    assert entries[-1]["bytesReceived"] == len(prepared.body)  # type: ignore[arg-type]
    assert set(entries[-1]) == {"seq", "method", "path", "status", "bytesReceived", "started"}
    assert entries[-1]["path"] == "/api/v2/customModels/nope/versions/" and entries[-1]["status"] == 404
    since = entries[-1]["seq"]
    api.get(emulator.url("ping/"))
    assert [e["path"] for e in api.get(admin(emulator, "requests"), params={"since": since}).json()["requests"]] == [
        "/api/v2/ping/"
    ]
    assert api.delete(admin(emulator, "requests")).status_code == 204
    assert api.get(admin(emulator, "requests")).json()["requests"] == []


@END_TO_END
def test_admin_rejects_bad_rules(emulator: Emulated) -> None:
    api = emulator.session()
    assert api.post(admin(emulator, "faults"), json={"action": "explode"}).status_code == 422
    assert api.post(admin(emulator, "faults"), json={"count": 0}).status_code == 422
    assert api.post(admin(emulator, "faults"), json={"path": "("}).status_code == 422
    assert api.post(admin(emulator, "faults"), json={"status": 42}).status_code == 422
    assert api.put(admin(emulator, "faults"), json={"rate": 2}).status_code == 422
    assert api.delete(admin(emulator, "faults")).status_code == 204
