"""Issue 27: a client trickling its headers a byte at a time is never idle, so the idle rule alone
let it hold a connection for ever (slow-loris). `bound_header_time` closes it; a normal request
and a slowly sent body are untouched. A real waitress server on loopback, in process, with a
2-second deadline so the test takes seconds (the emulator's is HEADER_DEADLINE)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import waitress

from cmkit.emulator.server import bound_header_time

pytestmark = pytest.mark.slow
DEADLINE = 2.0
INTERVAL = 0.5


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got %d" % len(body)]


def serve(bounded: bool) -> Iterator[int]:
    server = waitress.create_server(  # type: ignore[attr-defined]
        app, host="127.0.0.1", port=0, channel_timeout=60, cleanup_interval=INTERVAL, asyncore_use_poll=True
    )
    if bounded:
        bound_header_time(server, DEADLINE)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield int(server.effective_port)
    finally:
        server.task_dispatcher.shutdown()
        server.close()


@pytest.fixture
def bounded() -> Iterator[int]:
    yield from serve(True)


@pytest.fixture
def unbounded() -> Iterator[int]:
    yield from serve(False)


def trickle(port: int, data: bytes, seconds: float) -> bool:
    """Send `data` a byte every 0.2 s for `seconds`; True when the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.05)
        ends = time.monotonic() + seconds
        for byte in data:
            if time.monotonic() > ends:
                return False
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    return True
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
            time.sleep(0.2)
    return False


HEADERS = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"


def test_trickled_headers_are_cut_after_the_deadline(bounded: int) -> None:
    assert trickle(bounded, HEADERS, DEADLINE + 4 * INTERVAL + 3)


def test_without_the_bound_the_same_client_stays(unbounded: int) -> None:
    # The control: waitress's idle rule alone never cuts it (what the bound adds).
    assert not trickle(unbounded, HEADERS, DEADLINE + 4 * INTERVAL + 3)


def test_a_slow_body_and_a_normal_request_are_untouched(bounded: int) -> None:
    body = b"x" * 30
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", bounded), timeout=10) as sock:
        sock.sendall(head)
        for byte in body:  # 6 s of body, three times the header deadline
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
        answer = b""
        with contextlib.suppress(TimeoutError):
            while b"got 30" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    assert b"200 OK" in answer and b"got 30" in answer
