"""The runtime's worker (cmkit_runtime/inlineworker.py), run for real: gunicorn serving over HTTP.

With one request thread (the default) it serves each request on the thread that accepted it; a
connection whose bytes have not arrived waits in its poller meanwhile. Requests must still run
one at a time, and a request longer than gunicorn's worker timeout must not get the worker killed.
"""

from __future__ import annotations

import itertools
import json
import resource
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from cmkit.scaffold import init_bundle, make_spec
from cmkit_runtime import inlineworker
from tests.support.serving import Server, serve

pytestmark = pytest.mark.slow

ROW = {"sqft": [1500], "bedrooms": [3], "age_years": [10], "distance_km": [5.0]}

# predict() records when it ran; it sleeps as long as the file "sleep" in the bundle says.
TIMED = """
import json
import os
import time
from pathlib import Path

import custom_real

load_model = custom_real.load_model


def predict(model, X):
    here = Path(__file__).parent
    started = time.monotonic()
    time.sleep(float((here / "sleep").read_text()))
    answer = custom_real.predict(model, X)
    with open(here / "calls.jsonl", "a") as calls:
        calls.write(json.dumps([os.getpid(), started, time.monotonic()]) + "\\n")
    return answer
"""

# start_server.sh with gunicorn's worker timeout at 2 s (30 s otherwise): the master kills a
# worker that has not told it it is alive for that long.
SHORT_TIMEOUT = """#!/bin/sh
exec python -c 'import sys, cmkit_runtime.cli as cli
options = cli.gunicorn_options
cli.gunicorn_options = lambda environ, code_dir: {**options(environ, code_dir), "timeout": 2}
sys.exit(cli.main(["serve", "--code-dir", sys.argv[1]]))' "$(dirname "$0")"
"""


def timed_bundle(root: Path, sleep: float) -> Path:
    bundle = root / "model"
    init_bundle(bundle, make_spec("regression", "timed"))
    (bundle / "custom.py").rename(bundle / "custom_real.py")
    (bundle / "custom.py").write_text(TIMED)
    (bundle / "sleep").write_text(str(sleep))
    return bundle


def calls(bundle: Path) -> list[tuple[int, float, float]]:
    lines = (bundle / "calls.jsonl").read_text().splitlines()
    return [tuple(json.loads(line)) for line in lines]  # type: ignore[misc]


def slow_client(server: Server, answers: list[int]) -> None:
    """Connects, and sends its request only after a pause: it waits in the poller, not in the thread."""
    body = json.dumps({"X": ROW}).encode()
    head = f"POST {server.prefix}/predict_no_state/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        time.sleep(0.3)
        connection.sendall(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        status = connection.recv(65536).split(b" ", 2)[1]
        answers.append(int(status))


def test_the_runtime_serves_with_the_inline_worker() -> None:
    # The gunicorn this project installs has what the worker builds on; were it to change, the
    # runtime would fall back to gthread and this test says so.
    assert inlineworker.usable()


def test_a_silent_connection_past_descriptor_1024_is_not_taken_for_readable() -> None:
    # A worker with many kept-alive connections has descriptors past select()'s range.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(4096, hard)), hard))
    held = [socket.socket() for _ in range(1100)]
    silent, peer = socket.socketpair()
    try:
        assert silent.fileno() > 1024
        assert not inlineworker._readable_now(silent)
        peer.sendall(b"GET / HTTP/1.1\r\n")
        assert inlineworker._readable_now(silent)
    finally:
        for sock in [*held, silent, peer]:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_one_request_thread_serves_one_request_at_a_time(tmp_path: Path) -> None:
    bundle = timed_bundle(tmp_path, 0.05)
    env = {"CUSTOM_MODEL_WORKERS": "1"}
    with serve(bundle, tmp_path / "server.log", env=env) as server:
        assert "Using worker: cmkit_runtime.inlineworker.InlineThreadWorker" in server.log()
        answers: list[int] = []
        session = requests.Session()  # kept alive: its requests come back through the poller

        def kept_alive() -> None:
            answers.extend(server.predict(ROW, session).status_code for _ in range(3))

        clients = [threading.Thread(target=lambda: answers.append(server.predict(ROW).status_code)) for _ in range(6)]
        clients += [threading.Thread(target=slow_client, args=(server, answers)) for _ in range(2)]
        clients.append(threading.Thread(target=kept_alive))
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=60)
    assert answers == [200] * 11, answers
    spans = sorted(calls(bundle), key=lambda call: call[1])
    assert len(spans) == 11
    for before, after in itertools.pairwise(spans):
        assert before[2] <= after[1], f"two predictions ran at once: {before} and {after}"


def test_a_request_longer_than_the_worker_timeout_is_answered(tmp_path: Path) -> None:
    bundle = timed_bundle(tmp_path, 4.0)  # twice the worker timeout
    (bundle / "start_server.sh").write_text(SHORT_TIMEOUT)
    (bundle / "start_server.sh").chmod(0o755)
    with serve(bundle, tmp_path / "server.log", env={"CUSTOM_MODEL_WORKERS": "1"}) as server:
        response = server.predict(ROW)
        log = server.log()
    assert response.status_code == 200, log
    assert "WORKER TIMEOUT" not in log


def test_the_workers_settings_are_gunicorns_read_once() -> None:
    """A value is gunicorn's on its first read, then kept (a worker's settings do not change)."""
    from gunicorn.config import Config

    config = Config()
    config.set("timeout", 7)
    view = inlineworker._ReadOnce(config)
    assert (view.timeout, view.is_ssl, view.settings) == (7, config.is_ssl, config.settings)
    config.set("timeout", 9)
    assert view.timeout == 7 and "timeout" in vars(view)
    with pytest.raises(AttributeError, match="No configuration setting for: nothing"):
        view.nothing  # noqa: B018 - the read is the test
