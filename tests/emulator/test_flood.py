"""Issue 27 item 1: connections that never finish their headers (no token needed) must not lock
token holders out of the emulator. A served emulator (slow tier) under a flood of 300 such
connections, three times waitress's default limit of 100."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
import requests

from cmkit.emulator.server import CLEANUP_INTERVAL, IDLE_TIMEOUT
from tests.support.emulator_support import Emulator

pytestmark = pytest.mark.slow
FLOOD = 300


def test_a_slow_client_flood_neither_locks_out_token_holders_nor_stays(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path / "data").start()
    flood: list[socket.socket] = []
    try:
        host, port = emulator.root.removeprefix("http://").rstrip("/").split(":")
        for _ in range(FLOOD):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /api/v2/ping/ HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            flood.append(sock)
        # A token holder is answered at once (the bound is the client's timeout, not a timing claim).
        answer = emulator.session().get(emulator.url("ping/"), timeout=5)
        assert answer.status_code == 200, answer.text
        # And the unfinished connections are closed once idle for IDLE_TIMEOUT seconds.
        deadline = time.monotonic() + IDLE_TIMEOUT + 4 * CLEANUP_INTERVAL + 10
        for sock in flood:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
    finally:
        for sock in flood:
            sock.close()
        emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(emulator.url("ping/"), timeout=2)  # stopped: nothing left listening
