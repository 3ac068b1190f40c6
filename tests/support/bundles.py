"""Small, self-contained bundles for runtime and check tests.

Each is a real Flask app served by gunicorn through a real start_server.sh; `behaviour` picks a
misbehaviour on the wire so that the checks, not a template's guards, have to catch it.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

APP = """
import json, os, threading, time
from flask import Flask, Response, request

HERE = os.path.dirname(__file__)
BEHAVIOUR = os.environ.get("TEST_BEHAVIOUR") or open(os.path.join(HERE, "behaviour.txt")).read().strip()
TARGET = "{target}"
PREFIX = "/" + os.environ.get("URL_PREFIX", "").strip("/")
PREFIX = "" if PREFIX == "/" else PREFIX
if BEHAVIOUR == "memory_hog":
    hog = bytearray(800 * 1024 * 1024)  # zero-filled, so every page is touched
if os.environ.get("EGRESS_TARGET"):
    import socket
    host, port = os.environ["EGRESS_TARGET"].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        print("egress: connected", flush=True)
    except OSError as exc:
        print("egress: blocked (" + str(exc) + ")", flush=True)
print("model loaded", flush=True)
app = Flask(__name__)
calls = [0]
lock = threading.Lock()


@app.get(PREFIX + "/")
def ping():
    return ""


def value(x, mean):
    a = x["a"] if x["a"] is not None else 0.0
    b = x["b"] if x["b"] is not None else 0.0
    if BEHAVIOUR == "batch_dependent":
        a = a - mean
    if BEHAVIOUR == "stateful":
        a = a + calls[0]
    if BEHAVIOUR == "wrong_predictions" and b >= 5:  # a bug that only some rows reach
        return 1.5 * a - 0.25 * b
    return 1.5 * a + 0.25 * b


@app.post(PREFIX + "/predict_no_state/")
def predict():
    X = request.get_json()["X"]
    rows = [dict(zip(X, values)) for values in zip(*X.values())]
    with lock:
        calls[0] += 1
        call = calls[0]
    if BEHAVIOUR == "slow":
        time.sleep(float(os.environ.get("TEST_SLOW_SECONDS", "1.5")))
    if BEHAVIOUR == "flaky" and call % 5 == 0:  # one request in five, whatever the concurrency
        return Response(json.dumps({{"message": "flaky: request " + str(call)}}), 500, mimetype="application/json")
    if BEHAVIOUR == "null_crash" and all(r["a"] is None for r in rows):
        return Response(json.dumps({{"message": "column a is entirely null"}}), 500, mimetype="application/json")
    present = [r["a"] for r in rows if r["a"] is not None]
    mean = sum(present) / len(present) if present else 0.0
    scores = [value(r, mean) for r in rows]
    if TARGET == "regression":
        predictions = scores
    else:
        probability = [1 / (1 + 2.718281828 ** (-s)) for s in scores]
        if TARGET == "binary":
            predictions = [{{"yes": p, "no": 1 - p}} for p in probability]
            if BEHAVIOUR == "bad_probabilities":
                predictions = [{{"yes": p, "no": 0.5}} for p in probability]
        else:
            predictions = [{{"a": p / 2, "b": p / 2, "c": 1 - p}} for p in probability]
    if BEHAVIOUR == "wrong_count":
        predictions = predictions[:-1]
    body = json.dumps({{"predictions": predictions}})
    if BEHAVIOUR == "nan_output":
        body = body.replace(json.dumps(predictions[0]), "NaN", 1)
    return Response(body, mimetype="application/json")
"""

START = """#!/bin/sh
exec gunicorn --bind "0.0.0.0:${PORT:-8080}" --workers 1 --worker-class gthread --threads 4 \\
    --keep-alive 30 --graceful-timeout 2 --no-control-socket app:app
"""

LABELS = {
    "regression": "",
    "binary": "  positiveClassLabel: 'yes'\n  negativeClassLabel: 'no'\n",
    "multiclass": "  classLabels: [a, b, c]\n",
}


def write_bundle(
    root: Path,
    behaviour: str = "good",
    target: str = "regression",
    rows: int = 60,
    requirements: str = "",
    start_script: str = START,
    nulls: bool = True,
) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(APP.format(target=target))
    (root / "behaviour.txt").write_text(behaviour + "\n")
    script = root / "start_server.sh"
    script.write_text(start_script)
    script.chmod(0o755)
    (root / "requirements.txt").write_text(requirements)
    (root / "model-metadata.yaml").write_text(
        f"name: fixture-{behaviour}\ntype: inference\ntargetType: {target}\n"
        f"inferenceModel:\n  targetName: y\n{LABELS[target]}validation:\n  input: data/sample.csv\n"
    )
    generator = random.Random(7)
    with (root / "data" / "sample.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "when", "y"])
        for i in range(rows):
            a = "" if nulls and i % 10 == 3 else f"{generator.uniform(-2, 2):.4f}"
            writer.writerow([a, generator.randint(0, 9), f"2024-01-{1 + i % 28:02d}", f"{generator.random():.3f}"])
    return root


def expected_value(a: str, b: str) -> float:
    """The good model's prediction for one row of the sample data (what app.py computes)."""
    return 1.5 * (float(a) if a else 0.0) + 0.25 * float(b)


def write_expected(root: Path, column: str = "expected") -> Path:
    """data/expected.csv: the good model's predictions for data/sample.csv, one row each."""
    with (root / "data" / "sample.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = root / "data" / "expected.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", column])
        for index, row in enumerate(rows):
            writer.writerow([index, f"{expected_value(row['a'], row['b']):.6f}"])
    return path


# A model whose prediction depends on x2 and x7 only, out of ten columns x0..x9: feature impact
# must rank those two first. Written over `cmkit init`'s template (its real server).
TWO_OF_TEN = '''"""Depends on x2 and x7 only (tests/support/bundles.py: write_two_of_ten)."""
import numpy as np


def load_model(code_dir):
    return None


def predict(model, X):
    x2 = X["x2"].astype(float).fillna(0.0).to_numpy()
    x7 = X["x7"].astype(float).fillna(0.0).to_numpy()
    score = 3.0 * x2 - 2.0 * x7
    if "{target}" == "regression":
        return score
    return 1.0 / (1.0 + np.exp(-score))
'''


def write_two_of_ten(root: Path, target: str = "regression", rows: int = 300) -> Path:
    """A bundle (regression, or binary with labels yes/no) and its data/train.csv (target `y`)."""
    import math

    from cmkit.scaffold import init_bundle, make_spec

    labels = {"positive_class_label": "yes", "negative_class_label": "no"} if target == "binary" else {}
    init_bundle(root, make_spec(target, f"two-of-ten-{target}", target_name="y", **labels))
    (root / "custom.py").write_text(TWO_OF_TEN.replace("{target}", target))
    (root / "model.json").unlink(missing_ok=True)
    generator = random.Random(12)
    names = [f"x{i}" for i in range(10)]
    with (root / "data" / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "y"])
        for _ in range(rows):
            values = [generator.gauss(0, 1) for _ in names]
            score = 3.0 * values[2] - 2.0 * values[7]
            if target == "regression":
                y: object = round(score + generator.gauss(0, 0.1), 6)
            else:
                y = "yes" if generator.random() < 1 / (1 + math.exp(-score)) else "no"
            writer.writerow([f"{v:.6f}" for v in values] + [y])
    metadata = root / "model-metadata.yaml"
    text = metadata.read_text()
    metadata.write_text(text.replace("input: data/sample.csv", "input: data/train.csv"))
    return root
