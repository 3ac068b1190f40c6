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


@contextlib.contextmanager
def api_client(emulator: Any) -> Iterator[Any]:
    """cmkit's API client on an in-process emulator (tests/emulator_support.FlaskEmulator) served on loopback."""
    from cmkit.api.client import DataRobotClient
    from cmkit.api.config import ApiConfig
    from tests.emulator_support import TOKEN

    with serving(emulator.app) as base:
        client = DataRobotClient(ApiConfig(base + "api/v2", TOKEN, max_retries=0))
        try:
            yield client
        finally:
            client.close()
