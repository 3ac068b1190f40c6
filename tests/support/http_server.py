"""A WSGI app served on a real loopback socket in a thread (werkzeug's threaded server).

For tests of cmkit's HTTP clients: requests, urllib3's retries and the connection pool run for
real, against a scripted app or the emulator's own `create_app`, without a subprocess.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from werkzeug.serving import make_server

from cmkit.engine.base import ExitInfo, Server


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) until the block ends; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval: shutdown() waits up to one interval for the loop to notice.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="test-http-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class ThreadedServer(Server):
    """A model server that is a WSGI app served by `serving` in this process: no process to
    exit or log, nothing to stop but the socket (and what a subclass adds to `_stack`)."""

    log_text = ""

    def __init__(self, app: Any, url_prefix: str, stack: contextlib.ExitStack | None = None) -> None:
        self._stack = stack or contextlib.ExitStack()
        self.base_url = self._stack.enter_context(serving(app)).rstrip("/")
        self.url_prefix = url_prefix

    def exit_info(self) -> ExitInfo | None:
        return None

    def logs(self, tail: int | None = 50) -> str:
        return self.log_text

    def follow_logs(self) -> Iterator[str]:
        return iter(())

    def _stop(self) -> None:
        self._stack.close()

    def describe(self) -> dict[str, object]:
        return {"url": self.base_url}


@contextlib.contextmanager
def api_client(emulator: Any) -> Iterator[Any]:
    """cmkit's API client on an in-process emulator (tests/emulator_support.FlaskEmulator) served on loopback."""
    from cmkit.api.client import DataRobotClient
    from cmkit.api.config import ApiConfig
    from tests.support.emulator_support import TOKEN

    with serving(emulator.app) as base:
        client = DataRobotClient(ApiConfig(base + "api/v2", TOKEN, max_retries=0))
        try:
            yield client
        finally:
            client.close()
