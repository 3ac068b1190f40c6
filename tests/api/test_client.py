"""cmkit/api/client.py against a real HTTP server on loopback: retries, Retry-After, errors, pages,
async statuses, streamed uploads and look-before-recreate.

The far end is a small Flask app served by werkzeug in a thread (tests/support/http_server.py) whose
answers each test scripts, so urllib3's retries and requests' connection handling run for real.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

from cmkit.api.client import (
    MAX_RETRY_WAIT,
    ApiError,
    DataRobotClient,
    JobFailed,
    create_with_lookup,
    retry_after,
)
from cmkit.api.config import ApiConfig, MissingCredentials
from cmkit.api.connect import with_client
from cmkit.errors import InputError
from cmkit.events import RecordingEvents
from tests.support.http_server import serving

TOKEN = "secret-token-0123456789"


@dataclass
class Script:
    """Queued answers per path or "METHOD path" (the last one repeats) and every request that arrived."""

    answers: dict[str, list[tuple[int, dict[str, str], Any]]] = field(default_factory=dict)
    hits: list[tuple[str, str, float]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.answers[path] = list(answers)

    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for m, p, _ in self.hits if p == path and m == method)


def scripted_app(script: Script) -> Flask:
    app = Flask("scripted")

    @app.route("/api/v2/<path:path>", methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
    def answer(path: str) -> Response:
        with script.lock:
            script.hits.append((request.method, path, time.monotonic()))
            if request.files or request.form:
                script.bodies.append(
                    {"form": dict(request.form), "files": {k: f.read() for k, f in request.files.items()}}
                )
            if path == "things/" and request.method == "POST":
                # The create happens; whether its answer arrives is the script's business.
                script.created.append({"id": f"thing-{len(script.created)}", **(request.get_json() or {})})
            if path == "things/" and request.method == "GET":
                return jsonify({"data": script.created, "next": None})
            queue = (
                script.answers.get(f"{request.method} {path}")
                or script.answers.get(path)
                or [(404, {}, {"message": f"no script for {path}"})]
            )
            status, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(body, str | bytes):
            response = Response(body, status=status)
        else:
            response = jsonify(body)
            response.status_code = status
        response.headers.update(headers)
        return response

    return app


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def server(script: Script) -> Iterator[str]:
    with serving(scripted_app(script)) as base:
        yield base


def client(server: str, max_retries: int = 3) -> DataRobotClient:
    return DataRobotClient(ApiConfig(server + "api/v2", TOKEN, max_retries=max_retries, read_timeout=10))


def test_reads_are_retried_on_5xx_and_429_until_they_succeed(server: str, script: Script) -> None:
    # One failure each: urllib3 retries the first at once, so no backoff sleep slows the tier.
    for status in (503, 502, 500, 504, 429):
        path = f"flaky-{status}/"
        script.answer(path, (status, {}, {"message": "busy"}), (200, {}, {"ok": True}))
        assert client(server).get(path) == {"ok": True}
        assert script.count(path) == 2


def test_retry_after_is_waited_for_before_the_retry(
    server: str, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    # The clock, not the client: urllib3's Retry waits through time.sleep; record the wait
    # instead of spending a second of the fast tier on it.
    monkeypatch.setattr(time, "sleep", slept.append)
    script.answer("limited/", (429, {"Retry-After": "1"}, {"message": "slow down"}), (200, {}, {"ok": True}))
    assert client(server).get("limited/") == {"ok": True}
    assert script.count("limited/") == 2
    assert slept == [1.0]  # urllib3 waited the server's Retry-After, not its own short backoff


def test_reads_give_up_after_max_retries_with_the_last_status(server: str, script: Script) -> None:
    script.answer("down/", (503, {"Retry-After": "0"}, {"message": "still down"}))
    with pytest.raises(ApiError) as caught:
        client(server, max_retries=1).get("down/")
    assert caught.value.status == 503 and caught.value.retryable
    assert "HTTP 503: still down" in caught.value.message
    assert script.count("down/") == 2  # the first try and one retry


def test_creates_are_not_retried_and_carry_retry_after(server: str, script: Script) -> None:
    script.answer("create/", (503, {"Retry-After": "7"}, {"message": "later"}))
    with pytest.raises(ApiError) as caught:
        client(server).post_json("create/", {"name": "x"})
    assert (caught.value.status, caught.value.retry_after) == (503, 7.0)
    assert script.count("create/", "POST") == 1  # a lost answer may hide a create: never resent blindly


def test_retry_after_as_an_http_date_or_garbage(server: str, script: Script) -> None:
    later = formatdate(time.time() + 5, usegmt=True)
    script.answer("dated/", (429, {"Retry-After": later}, {"message": "x"}))
    script.answer("garbage/", (429, {"Retry-After": "soon"}, {"message": "x"}))
    api = client(server)
    with pytest.raises(ApiError) as dated:
        api.post_json("dated/", {})
    assert dated.value.retry_after is not None and 0 < dated.value.retry_after <= 6
    with pytest.raises(ApiError) as garbage:
        api.post_json("garbage/", {})
    assert garbage.value.retry_after is None


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"message": "name is taken", "errors": {"name": "taken"}}, "name is taken ({'name': 'taken'})"),
        ({"message": {"name": "required", "targetType": "bad"}}, "name: required; targetType: bad"),
        ({"message": "plain"}, "plain"),
        (["not", "an", "object"], "['not', 'an', 'object']"),
        ("<html>proxy error</html>", "<html>proxy error</html>"),
    ],
)
def test_error_messages_come_from_the_body(server: str, script: Script, body: Any, shown: str) -> None:
    script.answer("bad/", (422, {}, body))
    with pytest.raises(ApiError) as caught:
        client(server).post_json("bad/", {})
    assert caught.value.message.endswith(f"HTTP 422: {shown}") and not caught.value.retryable


def test_the_token_is_redacted_from_an_echoed_error(server: str, script: Script) -> None:
    script.answer("echo/", (400, {}, {"message": f"bad header Authorization: Bearer {TOKEN}"}))
    with pytest.raises(ApiError) as caught:
        client(server).get("echo/")
    assert TOKEN not in str(caught.value) and "Bearer ***" in str(caught.value)


def test_every_request_authenticates_and_names_cmkit(script: Script) -> None:
    seen: list[dict[str, str]] = []
    app = Flask("headers")

    @app.get("/api/v2/whoami/")
    def whoami() -> Response:
        seen.append(dict(request.headers))
        return jsonify({})

    with serving(app) as base:
        client(base).get("whoami/")
    assert seen[0]["Authorization"] == f"Bearer {TOKEN}" and seen[0]["User-Agent"].startswith("cmkit/")


def test_an_unreachable_endpoint_is_one_error_without_the_token() -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        api = DataRobotClient(ApiConfig(f"http://user:pw@127.0.0.1:{port}/api/v2", TOKEN, max_retries=0))
        with pytest.raises(ApiError) as caught:
            api.get("anything/")
    assert caught.value.status is None and caught.value.retryable
    assert "cannot reach http://user:***@127.0.0.1" in caught.value.message
    assert TOKEN not in caught.value.message and "pw" not in caught.value.message


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak"])
def test_a_malformed_token_is_refused_before_any_request(token: str) -> None:
    with pytest.raises(InputError, match="empty or contains whitespace"):
        DataRobotClient(ApiConfig("http://127.0.0.1:1/api/v2", token))


def test_pages_follow_next_until_the_end(server: str, script: Script) -> None:
    second = server + "api/v2/items/?page=2"
    script.answer(
        "items/",
        (200, {}, {"data": [{"id": 1}, {"id": 2}], "next": second}),
        (200, {}, {"data": [{"id": 3}], "next": None}),
    )
    assert [item["id"] for item in client(server).pages("items/")] == [1, 2, 3]
    assert script.count("items/") == 2


def test_wait_status_follows_the_job_to_its_result(server: str, script: Script) -> None:
    script.answer(
        "status/job/",
        (200, {}, {"status": "RUNNING"}),
        (303, {"Location": server + "api/v2/result/"}, {"status": "COMPLETED"}),
    )
    assert client(server).wait_status("status/job/", timeout=30, poll=0.01) == server + "api/v2/result/"


def test_wait_status_reports_a_failed_job_and_a_timeout(server: str, script: Script) -> None:
    script.answer("status/bad/", (200, {}, {"status": "ERROR", "message": "it broke"}))
    script.answer("status/slow/", (200, {}, {"status": "RUNNING"}))
    api = client(server)
    with pytest.raises(JobFailed, match="ended ERROR: it broke"):
        api.wait_status("status/bad/", timeout=30, poll=0.01)
    with pytest.raises(ApiError, match="did not finish within"):
        api.wait_status("status/slow/", timeout=0.05, poll=0.01)


def test_poll_waits_until_done_and_gives_up_at_the_timeout(server: str, script: Script) -> None:
    script.answer("build/", (200, {}, {"buildStatus": "processing"}), (200, {}, {"buildStatus": "success"}))
    waited: list[dict[str, Any]] = []
    api = client(server)
    done = api.poll("build/", lambda b: b["buildStatus"] == "success", 30, "the build", waited.append, 0.01)
    assert done["buildStatus"] == "success" and waited == [{"buildStatus": "processing"}]
    script.answer("never/", (200, {}, {"buildStatus": "processing"}))
    with pytest.raises(ApiError, match="the build did not finish within"):
        api.poll("never/", lambda b: False, 0.05, "the build", interval=0.01)


def test_uploads_stream_multipart_and_report_progress(server: str, script: Script) -> None:
    script.answer("upload/", (201, {}, {"id": "v1"}))
    payload = bytes(range(256)) * 4096  # 1 MiB
    chunks: list[int] = []
    parts = [("label", "v"), ("file", ("model.bin", io.BytesIO(payload), "application/octet-stream"))]
    response = client(server).upload("POST", "upload/", parts, chunks.append)
    assert response.json() == {"id": "v1"}
    assert script.bodies == [{"form": {"label": "v"}, "files": {"file": payload}}]
    assert sum(chunks) > len(payload) and all(chunk >= 0 for chunk in chunks)


def test_create_with_lookup_finds_a_create_whose_answer_was_lost(server: str, script: Script) -> None:
    # The POST creates the thing, then the answer is a 503: a blind retry would make a second one.
    script.answer("POST things/", (503, {"Retry-After": "0"}, {"message": "lost"}))
    api = client(server)
    events = RecordingEvents()

    def lookup() -> dict[str, Any] | None:
        return next((t for t in api.pages("things/") if t.get("name") == "only"), None)

    found = create_with_lookup(lambda: dict(api.post_json("things/", {"name": "only"}).json()), lookup, "thing", events)
    assert found["id"] == "thing-0" and len(script.created) == 1
    assert script.count("things/", "POST") == 1
    assert any("the earlier attempt had succeeded" in line for line in events.lines)


def test_create_with_lookup_retries_when_nothing_was_created(server: str, script: Script) -> None:
    script.answer("make/", (503, {"Retry-After": "0"}, {"message": "busy"}), (201, {}, {"id": "made"}))
    api = client(server)
    lookups: list[int] = []

    def lookup() -> None:
        lookups.append(1)
        return None

    made = create_with_lookup(lambda: dict(api.post_json("make/", {}).json()), lookup, "make", RecordingEvents())
    assert made == {"id": "made"} and script.count("make/", "POST") == 2 and lookups == [1]


def test_create_with_lookup_stops_at_a_client_error(server: str, script: Script) -> None:
    script.answer("refuse/", (422, {}, {"message": "invalid"}))
    api = client(server)
    with pytest.raises(ApiError, match="invalid"):
        create_with_lookup(
            lambda: api.post_json("refuse/", {}), lambda: pytest.fail("no lookup"), "x", RecordingEvents()
        )
    assert script.count("refuse/", "POST") == 1


def test_retry_after_prefers_the_server_and_caps_the_wait() -> None:
    assert retry_after(ApiError("x", 503, retry_after=2.5), attempt=5) == 2.5
    assert retry_after(ApiError("x", 503, retry_after=3600), attempt=0) == MAX_RETRY_WAIT
    assert [retry_after(ApiError("x", 503), attempt) for attempt in range(3)] == [0.2, 0.4, 0.8]
    assert retry_after(ApiError("x", 503), attempt=20) == MAX_RETRY_WAIT


def test_with_client_gives_work_a_configured_client(
    server: str, script: Script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(tmp_path / "none.yaml"))
    for name in ("DATAROBOT_ENDPOINT", "DATAROBOT_API_TOKEN", "DATAROBOT_SSL_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    script.answer("version/", (200, {}, {"versionString": "2.37.0"}))
    clients: list[DataRobotClient] = []

    def work(api: DataRobotClient) -> Any:
        clients.append(api)
        return api.get("version/")

    assert with_client(server, TOKEN, work) == {"versionString": "2.37.0"}
    assert clients[0].config.endpoint == server + "api/v2"
    with pytest.raises(MissingCredentials):
        with_client(None, None, work)
    assert len(clients) == 1


def test_a_reads_retry_after_is_capped_and_bounded_by_the_deadline(
    server: str, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27 item 4: `Retry-After: 3600` on a read made `push --timeout 5` sleep the hour (the
    30 s cap covered creates only)."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    script.answer("hour/", (503, {"Retry-After": "3600"}, {"message": "later"}), (200, {}, {"ok": True}))
    assert client(server).get("hour/") == {"ok": True}
    assert slept == [MAX_RETRY_WAIT]
    slept.clear()
    bounded = client(server)
    bounded.deadline = time.monotonic() + 5
    script.answer("hour2/", (503, {"Retry-After": "3600"}, {"message": "later"}), (200, {}, {"ok": True}))
    assert bounded.get("hour2/") == {"ok": True}
    assert len(slept) == 1 and 4 < slept[0] <= 5
    bounded.deadline = time.monotonic() - 1  # past it: the retries happen at once
    script.answer("down/", (503, {"Retry-After": "3600"}, {"message": "still down"}))
    with pytest.raises(ApiError, match="HTTP 503"):
        bounded.get("down/")
    assert slept[1:] == []
