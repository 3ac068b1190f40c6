"""A model server written with the standard library only, as a bundle's own start_server.sh runs it.

The emulator's process runtime (and test-local's) starts a bundle's start_server.sh as a real
process and runs the real checks against it over HTTP. cmkit's runtime takes about a second to
import pandas and start gunicorn; this server starts in a few milliseconds, which is what lets
the fast tier run real model tests and feature impact through the emulator.

The model predicts 3*x2 - 2*x7 from ten columns x0..x9 (nulls read as 0), so feature impact must
rank x2 and x7 first and give the rest no impact. `behaviour`: "good"; "fails" (every prediction
is an HTTP 500); "hangs" (never listens: the test stays in progress until it is cancelled).
"""

from __future__ import annotations

import random
from pathlib import Path

SERVE = r'''
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOUR = "{behaviour}"
PREFIX = "/" + os.environ.get("URL_PREFIX", "").strip("/")
PREFIX = "" if PREFIX == "/" else PREFIX


def number(value):
    return 0.0 if value is None or value == "" else float(value)


class Model(BaseHTTPRequestHandler):
    def answer(self, code, document):
        payload = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.answer(200, {{}}) if self.path == PREFIX + "/" else self.answer(404, {{"message": "not found"}})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != PREFIX + "/predict_no_state/":
            self.answer(404, {{"message": "not found"}})
        elif BEHAVIOUR == "fails":
            self.answer(500, {{"message": "the model failed to predict"}})
        else:
            X = json.loads(body)["X"]
            rows = len(next(iter(X.values()))) if X else 0
            x2, x7 = X.get("x2", [None] * rows), X.get("x7", [None] * rows)
            self.answer(200, {{"predictions": [3 * number(a) - 2 * number(b) for a, b in zip(x2, x7)]}})

    def log_message(self, format, *args):
        pass


print("model loaded", flush=True)
if BEHAVIOUR == "hangs":
    time.sleep(600)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Model).serve_forever()
'''

START = '#!/bin/sh\nexec python "$(dirname "$0")/serve.py"\n'
COLUMNS = [f"x{i}" for i in range(10)]


def stdlib_files(behaviour: str = "good") -> dict[str, bytes]:
    """The bundle's files, as a version upload takes them."""
    return {"start_server.sh": START.encode(), "serve.py": SERVE.format(behaviour=behaviour).encode()}


def write_stdlib_bundle(root: Path, behaviour: str = "good") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in stdlib_files(behaviour).items():
        (root / name).write_bytes(content)
    (root / "start_server.sh").chmod(0o755)
    return root


def training_csv(rows: int = 40, target: bool = True) -> bytes:
    """Ten columns (x2 and x7 matter) and, with `target`, the regression target `y`."""
    generator = random.Random(7)
    lines: list[list[str]] = [[*COLUMNS, "y"] if target else list(COLUMNS)]
    for _ in range(rows):
        values = [generator.gauss(0, 1) for _ in COLUMNS]
        line = [f"{v:.5f}" for v in values]
        lines.append([*line, f"{3 * values[2] - 2 * values[7]:.5f}"] if target else line)
    return "".join(",".join(line) + "\n" for line in lines).encode()
