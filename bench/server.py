#!/usr/bin/env python3
"""Comparison 2: cmkit's model runtime vs `drum server`, on the same model code.

Both sides run one worker process with the same `load_model`/`predict` code (DRUM through its
`custom.py` hooks). A third model is that DRUM-hook `custom.py` itself, served by both: the
runtime loading DRUM's format against DRUM. Single-row requests come from 8 concurrent keep-alive clients (wrk); each
side gets its native route and format (cmkit: JSON on `predict_no_state/`, DRUM: CSV on
`predict/`). Then the latency of one 10,000-row batch, median of repeats.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO,
    WORK,
    Load,
    Row,
    drum_code_dir,
    drum_with,
    group_cpu_seconds,
    median_seconds,
    python_env,
    ratio,
    script_main,
    server_process,
    wrk,
)
from cmkit.checks.protocols import encode_payload
from cmkit.engine.base import free_port
from cmkit.engine.process import server_command
from cmkit.scaffold import init_bundle, make_spec

PREFIX = "/bench/v1"
BATCH_ROWS = 10_000


@dataclass
class Model:
    label: str
    bundle: Path
    features: pd.DataFrame
    drum_format: bool = False  # the bundle is already a DRUM code dir: DRUM serves it as it is
    lead: float = 3.0  # issue 23's goal for single-row requests: this many times DRUM's throughput
    frameworks: tuple[str, ...] = ()  # what DRUM's virtualenv needs to load the artifact
    # The framework is too heavy for cmkit's dev extra (torch, TensorFlow): cmkit's runtime runs
    # from DRUM's virtualenv too (the bundle's start_server.sh names its Python), and the model's
    # own time is measured there.
    heavy: bool = False


def template_model() -> Model:
    bundle = WORK / "server" / "template"
    shutil.rmtree(bundle, ignore_errors=True)
    init_bundle(bundle, make_spec("regression", "bench-template"))
    data = pd.read_csv(bundle / "data" / "sample.csv")
    return Model("template model", bundle, data.drop(columns=["price"]))


def sklearn_model() -> Model:
    bundle = REPO / "sample_models" / "regression_diabetes"
    data = pd.read_csv(bundle / "data" / "test.csv")
    # Its own predict() is most of a request: see docs/benchmarks.md for what that leaves possible.
    return Model("sklearn sample (diabetes)", bundle, data.drop(columns=["progression"]), lead=2.0)


def drum_hooks_model() -> Model:
    """The template model wrapped in DRUM hooks (score returning a Predictions column), no start script."""
    template = template_model()
    code = drum_code_dir(template.bundle, WORK / "server" / "drum-hooks")
    return Model("DRUM hooks (template model)", code, template.features, drum_format=True, lead=2.5)


def framework_models() -> list[Model]:
    """DataRobot's python3_xgboost and python3_onnx_regression, rebuilt small (tests/support/frameworks.py)."""
    from tests.support.frameworks import onnx_artifact, xgboost_booster

    models = []
    for label, make, framework in (
        ("XGBoost Booster artifact (.pkl)", xgboost_booster, "xgboost"),
        ("ONNX artifact (.onnx)", onnx_artifact, "onnxruntime"),
    ):
        bundle = WORK / "server" / framework
        shutil.rmtree(bundle, ignore_errors=True)
        make(bundle, "regression")
        data = pd.read_csv(bundle / "data" / "test.csv")
        features = data.drop(columns=["progression"])
        models.append(Model(label, bundle, features, drum_format=True, lead=2.0, frameworks=(framework,)))
    return models


def heavy_models() -> list[Model]:
    """DataRobot's python3_pytorch and python3_keras, built small with the template's save call
    by DRUM's virtualenv once the framework is added to it (tests/runtime/test_heavy_frameworks.py)."""
    from tests.runtime.test_heavy_frameworks import FRAMEWORKS, heavy_bundle

    models = []
    for label, framework in (("PyTorch artifact (.pth)", "torch"), ("Keras artifact (.h5)", "keras")):
        bundle = WORK / "server" / framework
        shutil.rmtree(bundle, ignore_errors=True)
        heavy_bundle(framework, "regression", bundle)
        features = pd.read_csv(bundle / "data" / "test.csv").drop(columns=["progression"])
        pinned = (FRAMEWORKS[framework],)
        models.append(Model(label, bundle, features, drum_format=True, lead=2.0, frameworks=pinned, heavy=True))
    return models


def batch(features: pd.DataFrame, rows: int) -> pd.DataFrame:
    return features.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)


def cmkit_body(frame: pd.DataFrame) -> bytes:
    columns = {name: [None if pd.isna(v) else v for v in frame[name].tolist()] for name in frame.columns}
    return encode_payload(columns).body


def drum_body(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@dataclass
class Side:
    load: Load
    batch_seconds: float
    batch_cpu_seconds: float  # the server's CPU per batch (every process of its group)


def _measure(url: str, single: bytes, big: bytes, content_type: str, seconds: float, repeats: int, group: int) -> Side:
    load = wrk(url, single, content_type, connections=8, seconds=seconds, server_group=group)
    session = requests.Session()

    def post_batch() -> None:
        response = session.post(url, data=big, headers={"Content-Type": content_type}, timeout=300)
        response.raise_for_status()

    cpu_before = group_cpu_seconds(group)
    seconds_per_batch = median_seconds(post_batch, repeats)  # and one warm-up batch
    return Side(load, seconds_per_batch, (group_cpu_seconds(group) - cpu_before) / (repeats + 1))


def cmkit_side(model: Model, seconds: float, repeats: int) -> Side:
    port = free_port()
    # TARGET_TYPE as DataRobot sets it: the DRUM-hook code dir has no model-metadata.yaml.
    env = {**python_env(), "PORT": str(port), "URL_PREFIX": PREFIX, "CUSTOM_MODEL_WORKERS": "1"}
    env["TARGET_TYPE"] = "regression"
    env["PYTHONPATH"] = str(REPO)  # this checkout's runtime, whichever Python the start script names
    url = f"http://127.0.0.1:{port}{PREFIX}"
    with server_process(
        server_command(model.bundle), env, url + "/", cwd=model.bundle, log=WORK / "server" / "cmkit.log"
    ) as server:
        return _measure(
            f"{url}/predict_no_state/",
            cmkit_body(model.features.head(1)),
            cmkit_body(batch(model.features, BATCH_ROWS)),
            "application/json",
            seconds,
            repeats,
            server.pid,  # its own session: the process group of the server and its workers
        )


def drum_side(model: Model, seconds: float, repeats: int) -> Side:
    venv = drum_with(*model.frameworks)
    code = model.bundle if model.drum_format else drum_code_dir(model.bundle, WORK / "server" / "drum-code")
    port = free_port()
    command = [
        str(venv / "bin" / "drum"),
        "server",
        "--code-dir",
        str(code),
        "--address",
        f"127.0.0.1:{port}",
        "--target-type",
        "regression",
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(
        command, {**python_env(), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}, url + "/", log=WORK / "server" / "drum.log"
    ) as server:
        return _measure(
            f"{url}/predict/",
            drum_body(model.features.head(1)),
            drum_body(batch(model.features, BATCH_ROWS)),
            "text/csv",
            seconds,
            repeats,
            server.pid,  # its own session: the process group of the server and its workers
        )


def predict_seconds(model: Model) -> float:
    """The model's own time for one row (load_model once, then predict), in this process."""
    import importlib.util

    if model.heavy:
        return _own_seconds_in(drum_with(*model.frameworks) / "bin" / "python", model)
    hooks = model.bundle / "bundle_custom.py"  # the DRUM-hook dir keeps the model's own custom.py there
    source = hooks if hooks.is_file() else model.bundle / "custom.py"
    spec = importlib.util.spec_from_file_location(f"bench_custom_{model.bundle.name}", source)
    assert spec and spec.loader
    custom = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(custom)
    row = model.features.head(1).reset_index(drop=True)
    if not hasattr(custom, "predict"):  # an artifact with DRUM's hooks: its load and scoring as the runtime does them
        from cmkit_runtime import loader
        from cmkit_runtime.target import Target

        served = loader.load(model.bundle, Target("regression"))
        return median_seconds(lambda: [served.predict(row) for _ in range(200)], 5) / 200
    loaded = custom.load_model(str(model.bundle))
    return median_seconds(lambda: [custom.predict(loaded, row) for _ in range(200)], 5) / 200


OWN_SECONDS = """
import sys, time, pandas as pd
from pathlib import Path
from cmkit_runtime import loader
from cmkit_runtime.target import Target
served = loader.load(Path(sys.argv[1]), Target("regression"))
row = pd.read_csv(sys.argv[2]).head(1)
served.predict(row)
times = []
for _ in range(5):
    began = time.perf_counter()
    for _ in range(200):
        served.predict(row)
    times.append((time.perf_counter() - began) / 200)
print(sorted(times)[2])
"""


def _own_seconds_in(python: Path, model: Model) -> float:
    """The model's own time for one row, loaded and scored as the runtime does, in `python`."""
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "row.csv"
        model.features.head(1).to_csv(rows, index=False)
        env = {**python_env(), "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [str(python), "-c", OWN_SECONDS, str(model.bundle), str(rows)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=600,
        )
    return float(done.stdout.strip().splitlines()[-1])


def compare(model: Model, seconds: float, repeats: int) -> tuple[list[Row], Side]:
    ours, theirs = cmkit_side(model, seconds, repeats), drum_side(model, seconds, repeats)
    # One worker saturated by 8 clients: 1/throughput is the cost of a request; minus the
    # model's own predict() it is what the server adds.
    own = predict_seconds(model)
    overhead_ours = 1 / ours.load.requests_per_second - own
    overhead_theirs = 1 / theirs.load.requests_per_second - own
    cpu_ours, cpu_theirs = ours.load.cpu_per_request_us, theirs.load.cpu_per_request_us
    rows = [
        Row(
            f"{model.label}: single-row req/s (8 keep-alive clients, 1 worker)",
            f"{ours.load.requests_per_second:.0f}",
            f"{theirs.load.requests_per_second:.0f}",
            ratio(ours.load.requests_per_second, theirs.load.requests_per_second),
            f">= {model.lead:g}x",
        ),
        # CPU seconds of all the server's processes per request served: what a request costs
        # whatever else the machine runs (throughput drops with the machine's load, this barely).
        Row(
            f"{model.label}: server CPU per single-row request",
            f"{cpu_ours:.0f} us",
            f"{cpu_theirs:.0f} us",
            ratio(cpu_ours, cpu_theirs),
            f"<= {1 / model.lead:.2f}x",
            lead=round(cpu_theirs / cpu_ours, 2) if cpu_ours > 0 else None,
        ),
        Row(
            f"{model.label}: server time per single-row request (1/throughput - predict() {own * 1000:.2f} ms)",
            f"{overhead_ours * 1000:.2f} ms",
            f"{overhead_theirs * 1000:.2f} ms",
            ratio(overhead_ours, overhead_theirs),
            "",
        ),
        Row(
            f"{model.label}: single-row p50 latency",
            f"{ours.load.p50_ms:.2f} ms",
            f"{theirs.load.p50_ms:.2f} ms",
            ratio(ours.load.p50_ms, theirs.load.p50_ms),
            "",
        ),
        Row(
            f"{model.label}: single-row p99 latency",
            f"{ours.load.p99_ms:.2f} ms",
            f"{theirs.load.p99_ms:.2f} ms",
            ratio(ours.load.p99_ms, theirs.load.p99_ms),
            "<= 0.5x",
        ),
        Row(
            f"{model.label}: one {BATCH_ROWS:,}-row batch",
            f"{ours.batch_seconds * 1000:.0f} ms",
            f"{theirs.batch_seconds * 1000:.0f} ms",
            ratio(ours.batch_seconds, theirs.batch_seconds),
            "<= 1x",
        ),
        Row(
            f"{model.label}: one {BATCH_ROWS:,}-row batch, server CPU",
            f"{ours.batch_cpu_seconds * 1000:.1f} ms",
            f"{theirs.batch_cpu_seconds * 1000:.1f} ms",
            ratio(ours.batch_cpu_seconds, theirs.batch_cpu_seconds),
            "<= 1x",
        ),
    ]
    if ours.load.errors or theirs.load.errors:
        rows.append(Row(f"{model.label}: load errors", str(ours.load.errors), str(theirs.load.errors)))
    return rows, ours


def run(quick: bool = False) -> list[Row]:
    seconds, repeats = (3.0, 3) if quick else (15.0, 7)
    rows: list[Row] = []
    for model in (template_model(), sklearn_model(), drum_hooks_model(), *framework_models(), *heavy_models()):
        rows += compare(model, seconds, repeats)[0]
    return rows


if __name__ == "__main__":
    script_main(run, __doc__)
