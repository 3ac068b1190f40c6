"""A bare-bones model server WITHOUT the template's checks, for broken bundles that misbehave on the wire.

The template's server.py refuses to send NaN, a wrong number of predictions or probabilities
that do not sum to 1 (it answers 500 instead). Bundles that exist to show `cmkit test-local`
catching those must get them onto the wire, so they use this server: it sends whatever
custom.predict_json() returns, serialised with Python's default (non-strict) JSON, where a NaN
becomes the bare token `NaN`.

Standard library only. Routes as the template's: `GET $URL_PREFIX/` (200, empty body) and
`POST $URL_PREFIX/predict_no_state/` with `{"X": {column: [values]}}`. Listens on
0.0.0.0:$PORT (default 8080); SIGTERM stops it at once.

The copies in sample_models/broken/*/ are written by sample_models/build.py from
sample_models/broken/_shared/raw_server.py: edit that one.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(CODE_DIR))

import custom  # noqa: E402 (after the path is set)

_STRIPPED = os.environ.get("URL_PREFIX", "").strip("/")
PREFIX = f"/{_STRIPPED}" if _STRIPPED else ""
MODEL = custom.load_model(str(CODE_DIR))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the template's server

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == f"{PREFIX}/":
            self._send(200, b"")
        else:
            self._send(404, b'{"message": "not found"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != f"{PREFIX}/predict_no_state/":
            self._send(404, b'{"message": "not found"}')
            return
        try:
            columns = json.loads(body)["X"]
            predictions = custom.predict_json(MODEL, columns)
        except Exception as exc:  # a fixture server: report, do not crash
            self._send(500, json.dumps({"message": f"{type(exc).__name__}: {exc}"}).encode())
            return
        self._send(200, json.dumps({"predictions": predictions}).encode())

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT") or 8080)), Handler)
    server.daemon_threads = True
    print(f"raw_server: serving {PREFIX}/predict_no_state/ on port {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
