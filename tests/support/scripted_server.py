"""A model server that is a scripted WSGI app on a real loopback socket (tests/support/http_server.py).

For the fast tests of the readiness rule and of single checks: the app answers what the test
scripts (a 503 while "loading", a 404 for a server that ignores URL_PREFIX, a fixed prediction
document), and the client and the checks run for real over HTTP. Nothing to clean up but the
socket.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.http_server import ThreadedServer

# The status of `GET {prefix}/` for the n-th ping (from 0), and the prediction document.
Ping = Callable[[int], int]


class ScriptedServer(ThreadedServer):
    runtime = "scripted"
    log_text = "scripted server log"

    def __init__(self, ping: Ping, predictions: list[Any] | None = None, status: int = 200) -> None:
        self.pings = 0
        self._ping = ping
        self._predictions = predictions or []
        self._status = status
        super().__init__(self._app, "/m")

    @Request.application  # type: ignore[misc]
    def _app(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/m/":
            status = self._ping(self.pings)
            self.pings += 1
            return Response("", status)
        if request.method == "POST" and request.path == "/m/predict_no_state/":
            body = {"predictions": self._predictions} if self._status == 200 else {"message": "broken on purpose"}
            return Response(json.dumps(body), self._status, mimetype="application/json")
        return Response("not found", 404)


@contextlib.contextmanager
def scripted(ping: Ping, predictions: list[Any] | None = None, status: int = 200) -> Iterator[ScriptedServer]:
    server = ScriptedServer(ping, predictions, status)
    try:
        yield server
    finally:
        server.stop()
