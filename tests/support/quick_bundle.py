"""A bundle whose start_server.sh starts in a few hundredths of a second: for the fast tier.

Its server is Python's own http.server (no Flask, gunicorn or pandas to import), started as a
real process by the process runtime, so test-local, `--watch` and the readiness wait run for
real against it: `GET {URL_PREFIX}/`, `POST {URL_PREFIX}/predict_no_state/`, 404 elsewhere
(no `/info/`: it is not cmkit-runtime, so a watch restarts it instead of reloading it).
`behaviour.txt`, read on every request, picks a misbehaviour (broken: predictions answer 500;
crash_at_start: exit 3 before listening; exit_after_ready: exit 4 after the first readiness
answer); editing it is a code edit.
"""

from __future__ import annotations

import csv
from pathlib import Path

SERVER = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "/" + os.environ.get("URL_PREFIX", "").strip("/")
PREFIX = "" if PREFIX == "/" else PREFIX
if open(os.path.join(HERE, "behaviour.txt")).read().strip() == "crash_at_start":
    print("cannot load the model: crash_at_start", flush=True)
    sys.exit(3)


def exit_now():
    print("exiting: exit_after_ready", flush=True)
    os._exit(4)


def behaviour():
    return open(os.path.join(HERE, "behaviour.txt")).read().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == PREFIX + "/":
            self.answer(200, {})
            if behaviour() == "exit_after_ready":  # a server that dies once it has answered
                threading.Timer(0.2, exit_now).start()
        else:
            self.answer(404, {"message": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != PREFIX + "/predict_no_state/":
            self.answer(404, {"message": "not found"})
            return
        if behaviour() == "broken":
            self.answer(500, {"message": "broken on purpose"})
            return
        X = json.loads(body)["X"]
        a = [0.0 if v is None else float(v) for v in X["a"]]
        b = [0.0 if v is None else float(v) for v in X["b"]]
        self.answer(200, {"predictions": [1.5 * x + 0.25 * y for x, y in zip(a, b)]})


print("model loaded", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

# -S: nothing of site-packages is needed, and skipping it halves the start.
START = '#!/bin/sh\nexec python3 -S "$(dirname "$0")/server.py"\n'


def write_quick_bundle(root: Path, behaviour: str = "good", rows: int = 20, target_type: str = "regression") -> Path:
    """A regression bundle (target `y`, columns a and b, a null in a) served by SERVER."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "server.py").write_text(SERVER)
    (root / "behaviour.txt").write_text(behaviour + "\n")
    script = root / "start_server.sh"
    script.write_text(START)
    script.chmod(0o755)
    (root / "requirements.txt").write_text("")
    (root / "model-metadata.yaml").write_text(
        f"name: quick\ntype: inference\ntargetType: {target_type}\n"
        "inferenceModel:\n  targetName: y\nvalidation:\n  input: data/sample.csv\n"
    )
    with (root / "data" / "sample.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "y"])
        for i in range(rows):
            writer.writerow(["" if i % 7 == 3 else f"{i / 10:.1f}", i % 5, f"{i / 3:.3f}"])
    return root


def quick_prediction(a: str, b: str) -> float:
    """What SERVER predicts for one row."""
    return 1.5 * (float(a) if a else 0.0) + 0.25 * float(b)
