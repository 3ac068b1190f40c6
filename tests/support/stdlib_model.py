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
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.emulator_support import wait_for
from tests.support.flask_transport import InProcessEmulator

SERVE = r"""
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
    time.sleep(120)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Model).serve_forever()
"""

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


def training_csv(rows: int = 40) -> bytes:
    """Ten columns (x2 and x7 matter) and the regression target `y`: exactly the model's predictions."""
    generator = random.Random(7)
    lines: list[list[str]] = [[*COLUMNS, "y"]]
    for _ in range(rows):
        values = [generator.gauss(0, 1) for _ in COLUMNS]
        lines.append([*(f"{v:.5f}" for v in values), f"{3 * values[2] - 2 * values[7]:.5f}"])
    return "".join(",".join(line) + "\n" for line in lines).encode()


# Each module that imports the fixtures gets its own definition of them: this keeps one emulator
# (and its dataset) for the whole session whichever module asks first.
_SHARED: dict[str, object] = {}


@pytest.fixture(scope="session")
def stdlib_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessEmulator]:
    """One in-process emulator for the modules that run this model (its start costs a few tenths of a second).

    Import it into a test module to use it. A computation left running (a model that hangs) is
    cancelled when the session ends, as `cmkit emulator` cancels its jobs when it stops.
    """
    if "emulator" not in _SHARED:
        _SHARED["emulator"] = InProcessEmulator(tmp_path_factory.mktemp("stdlib-model-emulator"))
    running = _SHARED["emulator"]
    assert isinstance(running, InProcessEmulator)
    yield running
    if _SHARED.pop("emulator", None) is not None:
        _SHARED.pop("dataset", None)
        running.stop()


@pytest.fixture(scope="session")
def stdlib_dataset(stdlib_emulator: InProcessEmulator) -> str:
    """training_csv() ingested by `stdlib_emulator`: its catalog id."""
    if "dataset" not in _SHARED:
        _SHARED["dataset"] = ingested(stdlib_emulator, stdlib_emulator.session(), training_csv())
    return str(_SHARED["dataset"])


def ingested(emulator: InProcessEmulator, api: requests.Session, content: bytes, name: str = "train.csv") -> str:
    response = api.post(emulator.url("datasets/fromFile/"), files={"file": (name, content)}, allow_redirects=False)
    assert ended(api, response.headers["Location"]).status_code == 303
    return str(response.json()["catalogId"])


def ended(api: requests.Session, status_url: str) -> requests.Response:
    """The async status once its job ended: a 303 to the result, or 200 with a final status."""

    def final() -> requests.Response | None:
        polled = api.get(status_url, allow_redirects=False)
        return polled if polled.status_code == 303 or polled.json()["status"] in ("ERROR", "ABORTED") else None

    return wait_for(final, timeout=60, interval=0.02)
