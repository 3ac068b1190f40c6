"""Every bundle the tests write, from one module: one way to lay files out, one metadata writer.

Each kind is a `write_<kind>(root, ...) -> root` function (the folder is created if needed):

- write_flask_bundle: a real Flask app served by gunicorn through a real start_server.sh, with a
  `behaviour` that misbehaves on the wire so that the checks, not a template's guards, catch it
  (real servers: slow and Docker tiers).
- write_quick_bundle: Python's own http.server, started in a few hundredths of a second by the
  process runtime: test-local, `--watch` and the readiness wait run for real in the fast tier.
- write_stdlib_bundle (and stdlib_files, the same files as an upload takes them): a
  standard-library server predicting 3*x2 - 2*x7, for models the emulator runs in the fast tier.
- write_runtime_bundle: `cmkit init`'s template (cmkit-runtime, the real model server) with a
  custom.py of the test's own; write_two_of_ten is the feature-impact model built on it.
- write_drum_bundle and the builders named for what they hold (hooks_only, bare_pipeline...):
  DRUM-format bundles (hooks or one pickled artifact, no start script) on the sample models' data.
- write_static_bundle: files only, for tests whose server never answers (lint, deps, the
  pre-commit hooks, hostile input, a start script that is the subject of the test).

The flask and quick models predict the same linear score (linear_prediction), so write_expected
gives either's exact predictions.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
import random
import shutil
import textwrap
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO

# --- shared layout -------------------------------------------------------------------------------

STATIC_START = "#!/bin/sh\nexec python -m server\n"


def write_files(root: Path, files: Mapping[str, str | bytes], executable: tuple[str, ...] = ()) -> Path:
    """Write `files` (paths relative to `root`, parents created); `executable` ones get mode 755."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for name in executable:
        (root / name).chmod(0o755)
    return root


def metadata_yaml(
    name: str,
    target: str = "regression",
    target_name: str | None = "y",
    labels: str = "",
    validation: str | None = None,
) -> str:
    """model-metadata.yaml of an inference model; `labels` are YAML lines under inferenceModel."""
    text = f"name: {name}\ntype: inference\ntargetType: {target}\n"
    if target_name is not None:
        text += f"inferenceModel:\n  targetName: {target_name}\n{labels}"
    if validation is not None:
        text += f"validation:\n  input: {validation}\n"
    return text


def write_static_bundle(
    root: Path,
    start: str | None = STATIC_START,
    *,
    metadata: str | None = None,
    requirements: str | None = None,
    files: Mapping[str, str | bytes] | None = None,
    mode: int = 0o755,
) -> Path:
    """A bundle that is only files: start_server.sh (`start`, with `mode`; none if None),
    model-metadata.yaml and requirements.txt when given, and any other `files`."""
    contents: dict[str, str | bytes] = {}
    if metadata is not None:
        contents["model-metadata.yaml"] = metadata
    if requirements is not None:
        contents["requirements.txt"] = requirements
    write_files(root, {**contents, **(files or {})})
    if start is not None:
        script = root / "start_server.sh"
        script.write_text(start)
        script.chmod(mode)
    return root


def linear_prediction(a: str, b: str) -> float:
    """The good flask and quick models' prediction for one row of their sample data."""
    return 1.5 * (float(a) if a else 0.0) + 0.25 * float(b)


# --- flask: gunicorn, with a behaviour -----------------------------------------------------------

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

FLASK_START = """#!/bin/sh
exec gunicorn --bind "0.0.0.0:${PORT:-8080}" --workers 1 --worker-class gthread --threads 4 \\
    --keep-alive 30 --graceful-timeout 2 --no-control-socket app:app
"""

LABELS = {
    "regression": "",
    "binary": "  positiveClassLabel: 'yes'\n  negativeClassLabel: 'no'\n",
    "multiclass": "  classLabels: [a, b, c]\n",
}


def write_flask_bundle(
    root: Path,
    behaviour: str = "good",
    target: str = "regression",
    rows: int = 60,
    requirements: str = "",
    start_script: str = FLASK_START,
    nulls: bool = True,
) -> Path:
    """app.py, behaviour.txt (`behaviour`) and data/sample.csv (a, b, when, y; every tenth a null)."""
    write_files(
        root,
        {
            "app.py": APP.format(target=target),
            "behaviour.txt": behaviour + "\n",
            "start_server.sh": start_script,
            "requirements.txt": requirements,
            "model-metadata.yaml": metadata_yaml(
                f"fixture-{behaviour}", target, labels=LABELS[target], validation="data/sample.csv"
            ),
        },
        executable=("start_server.sh",),
    )
    (root / "data").mkdir(exist_ok=True)
    generator = random.Random(7)
    with (root / "data" / "sample.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "when", "y"])
        for i in range(rows):
            a = "" if nulls and i % 10 == 3 else f"{generator.uniform(-2, 2):.4f}"
            writer.writerow([a, generator.randint(0, 9), f"2024-01-{1 + i % 28:02d}", f"{generator.random():.3f}"])
    return root


def write_expected(root: Path, column: str = "expected") -> Path:
    """data/expected.csv: the good model's predictions for data/sample.csv, one row each."""
    with (root / "data" / "sample.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    path = root / "data" / "expected.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", column])
        for index, row in enumerate(rows):
            writer.writerow([index, f"{linear_prediction(row['a'], row['b']):.6f}"])
    return path


# --- quick: the standard library's http.server, for the fast tier --------------------------------
#
# `GET {URL_PREFIX}/`, `POST {URL_PREFIX}/predict_no_state/`, 404 elsewhere (no `/info/`: it is not
# cmkit-runtime, so a watch restarts it instead of reloading it). behaviour.txt, read on every
# request, picks a misbehaviour (broken: predictions answer 500; crash_at_start: exit 3 before
# listening; exit_after_ready: exit 4 after the first readiness answer); editing it is a code edit.

QUICK_SERVER = r"""
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
QUICK_START = '#!/bin/sh\nexec python3 -S "$(dirname "$0")/server.py"\n'


def write_quick_bundle(root: Path, behaviour: str = "good", rows: int = 20, target: str = "regression") -> Path:
    """A bundle (target `y`, columns a and b, a null in a every seventh row) served by QUICK_SERVER."""
    write_files(
        root,
        {
            "server.py": QUICK_SERVER,
            "behaviour.txt": behaviour + "\n",
            "start_server.sh": QUICK_START,
            "requirements.txt": "",
            "model-metadata.yaml": metadata_yaml("quick", target, validation="data/sample.csv"),
        },
        executable=("start_server.sh",),
    )
    (root / "data").mkdir(exist_ok=True)
    with (root / "data" / "sample.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "y"])
        for i in range(rows):
            writer.writerow(["" if i % 7 == 3 else f"{i / 10:.1f}", i % 5, f"{i / 3:.3f}"])
    return root


# --- stdlib: the x2/x7 model the emulator runs in the fast tier ----------------------------------
#
# cmkit's runtime takes about a second to import pandas and start gunicorn; this server starts in
# a few milliseconds, which is what lets the fast tier run real model tests and feature impact
# through the emulator. It predicts 3*x2 - 2*x7 from ten columns x0..x9 (nulls read as 0), so
# feature impact must rank x2 and x7 first and give the rest no impact. `behaviour`: "good";
# "fails" (every prediction is an HTTP 500); "hangs" (never listens: the test stays in progress
# until it is cancelled).

STDLIB_SERVER = r"""
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

STDLIB_START = '#!/bin/sh\nexec python "$(dirname "$0")/serve.py"\n'
COLUMNS = [f"x{i}" for i in range(10)]


def stdlib_files(behaviour: str = "good") -> dict[str, bytes]:
    """The bundle's files, as a version upload takes them."""
    return {"start_server.sh": STDLIB_START.encode(), "serve.py": STDLIB_SERVER.format(behaviour=behaviour).encode()}


def write_stdlib_bundle(root: Path, behaviour: str = "good", name: str | None = None, requirements: str = "") -> Path:
    """stdlib_files() on disk; with a `name`, model-metadata.yaml (regression, target `y`) too,
    and requirements.txt when `requirements` is given."""
    write_files(root, stdlib_files(behaviour), executable=("start_server.sh",))
    if name is not None:
        (root / "model-metadata.yaml").write_text(metadata_yaml(name))
    if requirements:
        (root / "requirements.txt").write_text(requirements)
    return root


def training_csv(rows: int = 40) -> bytes:
    """Ten columns (x2 and x7 matter) and the regression target `y`: exactly the model's predictions."""
    generator = random.Random(7)
    lines: list[list[str]] = [[*COLUMNS, "y"]]
    for _ in range(rows):
        values = [generator.gauss(0, 1) for _ in COLUMNS]
        lines.append([*(f"{v:.5f}" for v in values), f"{3 * values[2] - 2 * values[7]:.5f}"])
    return "".join(",".join(line) + "\n" for line in lines).encode()


# --- runtime: cmkit init's template (cmkit-runtime) with the test's custom.py ---------------------


def write_runtime_bundle(root: Path, target: str, name: str, custom: str, **spec: str) -> Path:
    """`cmkit init` (its real server, requirements and sample data) with custom.py replaced by `custom`.

    `spec` goes to make_spec (target_name, positive_class_label...)."""
    from cmkit.scaffold import init_bundle, make_spec

    init_bundle(root, make_spec(target, name, **spec))
    (root / "custom.py").write_text(custom)
    return root


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
    labels = {"positive_class_label": "yes", "negative_class_label": "no"} if target == "binary" else {}
    custom = TWO_OF_TEN.replace("{target}", target)
    write_runtime_bundle(root, target, f"two-of-ten-{target}", custom, target_name="y", **labels)
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


# --- DRUM format: hooks or one artifact, no start script -----------------------------------------
#
# Written from DRUM's public documentation of its hooks (`init`, `load_model`, `transform`, `score`
# returning a DataFrame, `post_process`) and of its artifact path (one pickled scikit-learn object),
# on the sample models' data. The builders keep their names: they are the ids of the tests they
# parametrize (tests/runtime/test_drum_formats.py, test_dropin_environment.py).

SAMPLES = REPO / "sample_models"
DIABETES = SAMPLES / "regression_diabetes"
CANCER = SAMPLES / "binary_breast_cancer"
IRIS = SAMPLES / "multiclass_iris"


def write_drum_bundle(folder: Path, sample: Path, custom: str | None, labels: str = "") -> Path:
    """A DRUM-format bundle: custom.py (if any), the sample's data, metadata and requirements."""
    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    shutil.copy(sample / "data" / "test.csv", folder / "data" / "test.csv")
    shutil.copy(sample / "requirements.txt", folder / "requirements.txt")
    meta = (sample / "model-metadata.yaml").read_text()
    target_type = "regression" if "regression" in meta else "binary" if "binary" in meta else "multiclass"
    target = next(line.split(":")[1].strip() for line in meta.splitlines() if "targetName" in line)
    (folder / "model-metadata.yaml").write_text(
        metadata_yaml(folder.name, target_type, target, labels, validation="data/test.csv")
    )
    if custom is not None:
        (folder / "custom.py").write_text(textwrap.dedent(custom))
    return folder


LINEAR_SCORE = """\
    import json
    from pathlib import Path

    import numpy as np
    import pandas as pd


    def load_model(code_dir):
        return json.loads((Path(code_dir) / "coefficients.json").read_text())


    def features(data, model):
        return data[model["features"]].astype(float).fillna(0.0).to_numpy()


    def score(data, model, **kwargs):
        # DRUM passes its TargetType enum, cmkit's runtime the string: its value is the name either way.
        assert getattr(kwargs["target_type"], "value", kwargs["target_type"]) == "regression"
        predictions = features(data, model) @ np.array(model["coef"]) + model["intercept"]
        return pd.DataFrame({"Predictions": predictions})
"""


def _coefficients(folder: Path) -> None:
    import joblib
    import numpy as np

    pipeline = joblib.load(DIABETES / "model.joblib")
    scaler, ridge = pipeline[-2], pipeline[-1]
    coef = ridge.coef_ / scaler.scale_
    intercept = float(ridge.intercept_ - np.sum(coef * scaler.mean_))
    document = {"features": list(pipeline.feature_names_in_), "coef": coef.tolist(), "intercept": intercept}
    (folder / "coefficients.json").write_text(json.dumps(document))


def hooks_only(folder: Path) -> Path:
    """load_model + score, no artifact the runtime must find, no start script."""
    bundle = write_drum_bundle(folder, DIABETES, LINEAR_SCORE)
    (bundle / "requirements.txt").write_text("")  # numpy and pandas come with the environment
    _coefficients(bundle)
    return bundle


def score_crashes_on_nulls(folder: Path) -> Path:
    custom = LINEAR_SCORE.replace(
        'data[model["features"]].astype(float).fillna(0.0)', 'data[model["features"]].astype("int64").astype(float)'
    )
    bundle = write_drum_bundle(folder, DIABETES, custom)
    (bundle / "requirements.txt").write_text("")
    _coefficients(bundle)
    return bundle


def score_keeps_state(folder: Path) -> Path:
    custom = LINEAR_SCORE.replace(
        "    def score(data, model, **kwargs):\n",
        "    CALLS = [0]\n\n\n    def score(data, model, **kwargs):\n        CALLS[0] += 1  # state between calls\n",
    ).replace('+ model["intercept"]', '+ model["intercept"] + CALLS[0]')
    bundle = write_drum_bundle(folder, DIABETES, custom)
    (bundle / "requirements.txt").write_text("")
    _coefficients(bundle)
    return bundle


def bare_pipeline(folder: Path) -> Path:
    """One pickled scikit-learn pipeline and nothing else: DRUM's artifact path."""
    import joblib

    labels = "  positiveClassLabel: malignant\n  negativeClassLabel: benign\n"
    bundle = write_drum_bundle(folder, CANCER, None, labels=labels)
    with (bundle / "model.pkl").open("wb") as handle:
        pickle.dump(joblib.load(CANCER / "model.joblib"), handle)
    return bundle


TRANSFORM = """\
    def transform(data, model):
        # The classifier was fitted on millimetres without missing values; requests come in centimetres.
        return (data[list(model.feature_names_in_)] * 10.0).fillna(0.0)
"""


def transform_then_classifier(folder: Path) -> Path:
    """A transform hook before a pickled classifier that has neither an imputer nor the units."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    data = pd.read_csv(IRIS / "data" / "test.csv")
    pipeline = joblib.load(IRIS / "model.joblib")
    features = list(pipeline.feature_names_in_)
    target = next(c for c in data.columns if c not in features)
    classifier = LogisticRegression(max_iter=2000).fit(data[features] * 10.0, data[target].astype(str))
    labels = "  classLabels:\n" + "".join(f"    - {label}\n" for label in classifier.classes_)
    bundle = write_drum_bundle(folder, IRIS, TRANSFORM, labels=labels)
    with (bundle / "model.pkl").open("wb") as handle:
        pickle.dump(classifier, handle)
    return bundle


def unknown_artifact(folder: Path) -> Path:
    bundle = write_drum_bundle(folder, DIABETES, None)
    (bundle / "model.jar").write_bytes(b"PK\x03\x04")
    return bundle
