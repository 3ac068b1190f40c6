"""cmkit/checks/readiness.py: when a started server is ready, and why it is not (fast tier).

Against real loopback servers: scripted WSGI apps (tests/support/scripted_server.py) for the answers,
and a real process (write_quick_bundle, tests/support/bundles.py) for a server that exits while it
is waited for.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cmkit.checks import readiness
from cmkit.checks.client import ModelClient
from cmkit.checks.readiness import Canceled, wait_ready, wait_until_ready
from cmkit.engine.base import RunSpec
from cmkit.engine.process import start_process
from tests.support.bundles import write_quick_bundle
from tests.support.scripted_server import scripted


def test_a_server_that_loads_answers_503_then_200_and_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "OOM_CHECK_SECONDS", 0.0)  # look for an OOM kill on every poll
    with scripted(lambda n: 503 if n < 3 else 200) as server:
        ready = wait_ready(server, timeout=10)
        assert ready.status == "succeeded", ready.message
        assert server.pings == 4
        assert ready.message.startswith("ready in ")
        assert ready.details["startupSeconds"] < 10
        assert ready.details["protocol"]["name"] == "predict_no_state"


def test_a_server_that_ignores_the_url_prefix_is_given_up_on_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "WRONG_ANSWER_GRACE_SECONDS", 0.05)
    with scripted(lambda n: 404) as server:
        ready = wait_ready(server, timeout=30)
    assert ready.status == "failed"
    assert ready.message == (
        "GET /m/ keeps answering HTTP 404 instead of 200: does the server mount its routes under URL_PREFIX?"
    )


def test_nothing_listening_fails_at_the_timeout_with_the_log_tail() -> None:
    with scripted(lambda n: 200) as server:
        pass  # stopped: its port no longer answers
    ready = wait_ready(server, timeout=0.05)
    assert ready.status == "failed"
    assert ready.message.startswith("GET /m/ did not answer 200 within 0.05s (last: connection failed (")
    assert ready.message.endswith("; last log lines:\nscripted server log")


def test_a_503_that_never_ends_is_reported_as_loading() -> None:
    with scripted(lambda n: 503) as server:
        ready = wait_ready(server, timeout=0.05)
    assert ready.status == "failed" and "(last: HTTP 503 (loading))" in ready.message


def test_a_cancel_ends_the_wait() -> None:
    cancel = threading.Event()
    cancel.set()
    with scripted(lambda n: 503) as server, pytest.raises(Canceled):
        wait_until_ready(server, ModelClient(server.url), 10, cancel)
    assert server.pings == 0


def test_a_server_that_exits_fails_with_its_exit_code_and_log(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle", behaviour="crash_at_start")
    server = start_process(bundle, RunSpec(url_prefix="/m"))
    try:
        ready = wait_ready(server, timeout=30)
    finally:
        server.stop()
    assert ready.status == "failed"
    assert ready.message.startswith("the server did not start: the server exited with code 3; last log lines:\n")
    assert "cannot load the model: crash_at_start" in ready.message
    assert ready.details["exit"] == {"exitCode": 3, "oomKilled": False}
