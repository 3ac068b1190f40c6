"""The model runtime, run for real: `cmkit init`, then its start_server.sh (cmkit-runtime serve), over HTTP.

Every server here is a real process group on a free port with a URL_PREFIX holding slashes;
tests/support/serving.py stops each one (SIGTERM, then SIGKILL to the group) whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from cmkit.scaffold import init_bundle, make_spec
from cmkit_runtime import wire
from tests.bundle.test_init import import_custom
from tests.support.serving import Server, free_port, serve, start

pytestmark = pytest.mark.slow

SPECS = {
    "regression": make_spec("regression", "reg"),
    "binary": make_spec("binary", "bin", positive_class_label="yes", negative_class_label="no"),
    "multiclass": make_spec("multiclass", "mc", class_labels=["low", "medium", "high", "1"]),
    "anomaly": make_spec("anomaly", "anom"),
}


def strict_json(response: requests.Response) -> Any:
    """Parse as a strict JSON reader would: NaN and Infinity tokens are errors."""

    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token} in {response.text[:200]!r}")

    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.text, parse_constant=reject)


def sample_columns(bundle: Path) -> dict[str, list[Any]]:
    data = pd.read_csv(bundle / "data/sample.csv", dtype={"class": str, "churned": str})
    return data.to_dict(orient="list")


def make_bundle(root: Path, target_type: str) -> Path:
    bundle = root / target_type
    init_bundle(bundle, SPECS[target_type])
    return bundle


@dataclass
class Served:
    server: Server
    bundle: Path
    target_type: str


@pytest.fixture(scope="module", params=list(SPECS))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Each target type's fresh bundle, served by two workers."""
    root = tmp_path_factory.mktemp("served")
    bundle = make_bundle(root, request.param)
    with serve(bundle, root / "server.log", env={"CUSTOM_MODEL_WORKERS": "2"}) as server:
        server.wait_loaded(2)  # the tests' requests may reach either worker
        yield Served(server, bundle, request.param)


def test_ping_is_200_with_an_empty_body_under_the_prefix(served: Served) -> None:
    response = requests.get(served.server.url("/"), timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert served.server.prefix == "/a/b-c/d"


def test_routes_outside_the_prefix_are_404(served: Served) -> None:
    root = served.server.root
    assert requests.get(f"{root}/", timeout=10).status_code == 404
    assert requests.post(f"{root}/predict_no_state/", json={"X": {"a": [1]}}, timeout=10).status_code == 404
    assert requests.get(f"{root}/a/b-c/", timeout=10).status_code == 404


def test_predictions_on_the_sample_data(served: Served) -> None:
    bundle, target_type = served.bundle, served.target_type
    columns = sample_columns(bundle)  # the target column included: the model must ignore it
    rows = len(next(iter(columns.values())))
    response = served.server.predict(columns)
    assert response.status_code == 200, response.text
    predictions = strict_json(response)["predictions"]
    assert len(predictions) == rows
    # The same numbers the author's predict() gives in process: the server only formats them.
    custom = import_custom(bundle)
    expected = custom.predict(custom.load_model(str(bundle)), pd.DataFrame(columns))
    spec = SPECS[target_type]
    if target_type in ("regression", "anomaly"):
        assert all(isinstance(p, float) for p in predictions)
        np.testing.assert_allclose(predictions, expected, rtol=1e-12)
    elif target_type == "binary":
        assert all(list(p) == ["yes", "no"] for p in predictions)
        np.testing.assert_allclose([p["yes"] for p in predictions], expected, rtol=1e-12)
        np.testing.assert_allclose([p["yes"] + p["no"] for p in predictions], 1.0, rtol=1e-12)
    else:
        assert all(list(p) == list(spec.class_labels) for p in predictions)  # declared label order
        np.testing.assert_allclose([list(p.values()) for p in predictions], expected, rtol=1e-12)
        np.testing.assert_allclose([sum(p.values()) for p in predictions], 1.0, rtol=1e-9)


def test_the_readme_example_request_works(served: Served) -> None:
    readme = (served.bundle / "README.md").read_text()
    body = re.search(r"^  -d '(.*)'$", readme, re.MULTILINE)
    assert body, readme
    response = requests.post(served.server.url("/predict_no_state/"), data=body.group(1).encode(), timeout=10)
    assert response.status_code == 200, response.text
    assert len(strict_json(response)["predictions"]) == 1


def test_single_rows_and_null_columns(served: Served) -> None:
    columns = sample_columns(served.bundle)
    one_row = {name: values[:1] for name, values in columns.items()}
    assert served.server.predict(one_row).status_code == 200
    nulls = {name: [None, None] for name in columns}
    response = served.server.predict(nulls)
    assert response.status_code == 200, response.text
    assert len(strict_json(response)["predictions"]) == 2


def test_the_columnar_body_predicts_what_its_json_twin_does(served: Served) -> None:
    """The runtime's own body form (cmkit_runtime/wire.py), as /info/ offers it."""
    info = strict_json(requests.get(served.server.url("/info/"), timeout=10))
    assert info["requestFormats"] == [wire.JSON, wire.COLUMNAR]
    columns = sample_columns(served.bundle)
    columns[next(iter(columns))] = [None] * len(next(iter(columns.values())))  # the null check's request
    rows = len(next(iter(columns.values())))
    flat = [value for values in columns.values() for value in values]
    body = json.dumps({"columns": list(columns), "rows": rows, "values": flat})
    headers = {"Content-Type": wire.COLUMNAR}
    answer = requests.post(served.server.url("/predict_no_state/"), data=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert strict_json(answer) == strict_json(served.server.predict(columns))
    refused = requests.post(served.server.url("/predict_no_state/"), data=b"{}", headers=headers, timeout=10)
    assert refused.status_code == 422 and '"rows": N' in strict_json(refused)["message"]


def test_kept_values_answer_short_requests_and_a_worker_without_them_says_so(served: Served) -> None:
    """wire.py's "keep" / "from": what cmkit's null check sends a runtime whose /info/ offers it."""
    assert strict_json(requests.get(served.server.url("/info/"), timeout=10))["columnarKeep"] is True
    columns = sample_columns(served.bundle)
    rows = len(next(iter(columns.values())))
    flat = [value for values in columns.values() for value in values]
    key = f"sample-{os.getpid()}"
    short = json.dumps({"from": key, "nulls": [0]})
    whole = json.dumps({"columns": list(columns), "rows": rows, "values": flat, "keep": key, "nulls": [0]})
    nulled = {name: [None] * rows if i == 0 else values for i, (name, values) in enumerate(columns.items())}
    expected = strict_json(served.server.predict(nulled))
    url, headers = served.server.url("/predict_no_state/"), {"Content-Type": wire.COLUMNAR}
    with requests.Session() as session:  # one connection: one worker
        answer = session.post(url, data=short, headers=headers, timeout=10)
        assert answer.status_code == 409 and strict_json(answer)["missing"] == key, answer.text
        answer = session.post(url, data=whole, headers=headers, timeout=10)
        assert answer.status_code == 200 and strict_json(answer) == expected, answer.text
        for _ in range(3):
            answer = session.post(url, data=short, headers=headers, timeout=10)
            assert answer.status_code == 200 and strict_json(answer) == expected, answer.text


def test_the_workers_fork_with_the_serving_stack_and_load_only_the_model(served: Served) -> None:
    """gunicorn's master imports Flask and pandas once, before its first fork (cli.when_ready):
    the workers share those pages instead of importing a copy each (0.6 s of CPU per worker at
    every start). The model is loaded in the workers alone."""
    master = strict_json(requests.get(served.server.url("/info/"), timeout=10))["masterPid"]
    workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    assert workers
    assert "pandas" in Path(f"/proc/{master}/maps").read_text()
    served.server.wait_loaded(len(workers))
    loads = re.findall(r"\[(\d+)\] \[INFO\] model loaded in", served.server.log())
    assert loads and str(master) not in loads and set(loads) <= {str(pid) for pid in workers}


def test_each_worker_loads_the_model_once(served: Served) -> None:
    server, session = served.server, requests.Session()
    columns = sample_columns(served.bundle)
    for _ in range(40):
        assert server.predict(columns, session).status_code == 200
    deadline = time.monotonic() + 30
    while server.log().count("model loaded in ") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(re.findall(r"\] model loaded in \d+\.\d\ds\n", server.log())) == 2


def test_no_access_log_by_default_and_gunicorn_not_flask(served: Served) -> None:
    log = served.server.log()
    assert "Starting gunicorn" in log and "Using worker: cmkit_runtime.inlineworker.InlineThreadWorker" in log
    assert '"GET ' not in log and '"POST ' not in log
    assert "development server" not in log


@pytest.fixture(scope="module")
def regression_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("regression")
    with serve(make_bundle(root, "regression"), root / "server.log") as server:
        yield server


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[1, 2]", 'the body has no "X"'),
        (b'{"x": {"a": [1]}}', 'the body has no "X"'),
        (b'{"X": [[1, 2]]}', '"X" must be an object'),
        (b'{"X": {}}', '"X" must be an object'),
        (b'{"X": {"a": 1}}', "column 'a' must be a list"),
        (b'{"X": {"a": [1, 2], "b": [1]}}', "same number of rows: 'a' has 2, 'b' has 1"),
        (b'{"X": {"a": []}}', '"X" has no rows'),
    ],
)
def test_malformed_requests_are_422(regression_server: Server, body: bytes, message: str) -> None:
    response = requests.post(regression_server.url("/predict_no_state/"), data=body, timeout=10)
    assert response.status_code == 422
    assert message in strict_json(response)["message"]


def test_wrong_method_and_unknown_route_answer_json(regression_server: Server) -> None:
    wrong = requests.get(regression_server.url("/predict_no_state/"), timeout=10)
    assert wrong.status_code == 405 and "POST" in strict_json(wrong)["message"]
    unknown = requests.get(regression_server.url("/nope"), timeout=10)
    assert unknown.status_code == 404 and "/a/b-c/d/predict_no_state/" in strict_json(unknown)["message"]


def test_missing_feature_is_a_500_naming_it(regression_server: Server) -> None:
    response = regression_server.predict({"sqft": [1000]})
    assert response.status_code == 500
    assert "missing feature column(s): bedrooms, age_years, distance_km" in strict_json(response)["message"]


# --- A switchboard model: predict() misbehaves as the request's "mode" column asks -------------

SWITCHBOARD = """
import numpy as np
import pandas as pd


def load_model(code_dir):
    return None


def predict(model, X):
    mode, n = str(X["mode"].iloc[0]), len(X)
    p = np.linspace(0.1, 0.9, n)
    if mode == "raise":
        raise ValueError("boom from the model")
    if mode == "nan":
        return np.full(n, np.nan)
    if mode == "inf":
        return np.where(np.arange(n) == n - 1, np.inf, 1.0)
    if mode == "short":
        return np.ones(n - 1)
    if mode == "strings":
        return np.array(["a"] * n)
    if mode == "column":
        return p.reshape(n, 1)
    if mode == "list":
        return p.tolist()
    if mode == "matrix":
        return np.column_stack([1 - p, p])
    if mode == "frame":
        return pd.DataFrame({"yes": p, "no": 1 - p})
    if mode == "unsummed":
        return np.column_stack([p, p])
    if mode == "outside":
        return 1.5 * p
    if mode == "softmax":
        return np.tile([0.2, 0.3, 0.5], (n, 1))
    if mode == "frame3":
        return pd.DataFrame({"c": [0.5] * n, "a": [0.2] * n, "b": [0.3] * n})
    if mode == "wide":
        return np.full((n, 4), 0.25)
    return p
"""

SWITCHBOARD_ENV = {
    "regression": {},
    "binary": {"TARGET_TYPE": "binary", "POSITIVE_CLASS_LABEL": "yes", "NEGATIVE_CLASS_LABEL": "no"},
    "multiclass": {"TARGET_TYPE": "multiclass", "CLASS_LABELS": "a b\tc"},  # white space, as DRUM splits it
}


@pytest.fixture(scope="module")
def switchboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """One bundle (regression metadata), served three times: the environment overrides the target."""
    root = tmp_path_factory.mktemp("switchboard")
    bundle = make_bundle(root, "regression")
    (bundle / "custom.py").write_text(SWITCHBOARD)
    servers = {kind: start(bundle, root / f"{kind}.log", env=env) for kind, env in SWITCHBOARD_ENV.items()}
    try:
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def ask(server: Server, mode: str, rows: int = 3) -> requests.Response:
    return server.predict({"mode": [mode] * rows, "x": list(range(rows))})


@pytest.mark.parametrize(
    ("kind", "mode", "message"),
    [
        ("regression", "raise", "predict() raised ValueError: boom from the model"),
        ("regression", "nan", "non-finite value (NaN or infinity) for row 0"),
        ("regression", "inf", "non-finite value (NaN or infinity) for row 2"),
        ("regression", "short", "predict() returned 2 predictions for 3 rows"),
        ("regression", "strings", "predict() must return numbers"),
        ("regression", "matrix", "one number per row, got shape (3, 2)"),
        ("binary", "unsummed", "the class probabilities of row 0 sum to 0.2, not 1"),
        ("binary", "outside", "probabilities outside [0, 1]"),
        ("binary", "nan", "non-finite value"),
        ("binary", "wide", "ordered [negative, positive], got shape (3, 4)"),
        ("multiclass", "wide", "an (n, 3) probability matrix in the order of classLabels ['a', 'b', 'c']"),
        ("multiclass", "short", "returned 2 predictions for 3 rows"),
    ],
)
def test_unusable_predictions_are_500_with_a_clear_message(
    switchboard: dict[str, Server], kind: str, mode: str, message: str
) -> None:
    response = ask(switchboard[kind], mode)
    assert response.status_code == 500
    assert message in strict_json(response)["message"]


def test_model_exceptions_are_logged_with_a_traceback(switchboard: dict[str, Server]) -> None:
    server = switchboard["regression"]
    assert ask(server, "raise").status_code == 500
    deadline = time.monotonic() + 10
    while "ValueError: boom from the model" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log()
    assert "predict() failed" in log and "Traceback (most recent call last)" in log
    assert "ValueError: boom from the model" in log


@pytest.mark.parametrize("mode", ["default", "list", "column"])
def test_regression_accepts_arrays_lists_and_single_columns(switchboard: dict[str, Server], mode: str) -> None:
    response = ask(switchboard["regression"], mode)
    assert strict_json(response) == {"predictions": [0.1, 0.5, 0.9]}


@pytest.mark.parametrize("mode", ["default", "matrix", "frame", "column"])
def test_binary_conventions(switchboard: dict[str, Server], mode: str) -> None:
    """1-D positive-class probabilities, an (n, 2) [negative, positive] matrix, or columns named by label."""
    predictions = strict_json(ask(switchboard["binary"], mode))["predictions"]
    assert [p["yes"] for p in predictions] == pytest.approx([0.1, 0.5, 0.9])
    assert [p["no"] for p in predictions] == pytest.approx([0.9, 0.5, 0.1])


@pytest.mark.parametrize("mode", ["softmax", "frame3"])
def test_multiclass_columns_follow_the_declared_labels(switchboard: dict[str, Server], mode: str) -> None:
    predictions = strict_json(ask(switchboard["multiclass"], mode))["predictions"]
    assert predictions == [{"a": 0.2, "b": 0.3, "c": 0.5}] * 3
    assert all(list(p) == ["a", "b", "c"] for p in predictions)


# --- Start-up, loading and shutdown -------------------------------------------------------------

GATED = """
import time
from pathlib import Path

import custom_real


def load_model(code_dir):
    # Blocks until the test creates the file "release": a load exactly as slow as the test needs.
    gate = Path(code_dir) / "release"
    deadline = time.monotonic() + 120
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.02)
    return custom_real.load_model(code_dir)


predict = custom_real.predict
"""


@pytest.fixture
def gated_bundle(tmp_path: Path) -> Path:
    bundle = make_bundle(tmp_path, "regression")
    (bundle / "custom.py").rename(bundle / "custom_real.py")
    (bundle / "custom.py").write_text(GATED)
    return bundle


def wait_for_status(server: Server, status: int) -> requests.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()
        try:
            response = requests.get(server.url("/"), timeout=5)
            if response.status_code == status:
                return response
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"never answered {status}:\n{server.log()}")


def test_503_while_loading_then_200_and_waiting_predictions_succeed(gated_bundle: Path, tmp_path: Path) -> None:
    # A waiting prediction holds its request thread: with the default single thread per worker the
    # worker's next request (this ping) would wait for the load too. Two threads show both answers.
    env = {"CUSTOM_MODEL_WORKERS": "1", "CUSTOM_MODEL_THREADS": "2"}
    with serve(gated_bundle, tmp_path / "server.log", env=env, ready=False) as server:
        loading = wait_for_status(server, 503)
        assert loading.json() == {"message": "the model is loading"}
        row = {"sqft": [1500], "bedrooms": [3], "age_years": [10], "distance_km": [5.0]}
        results: list[requests.Response] = []
        waiter = threading.Thread(target=lambda: results.append(server.predict(row)))
        waiter.start()
        assert requests.get(server.url("/"), timeout=5).status_code == 503  # still loading
        (gated_bundle / "release").touch()
        waiter.join(timeout=60)
        assert results and results[0].status_code == 200, results
        assert len(results[0].json()["predictions"]) == 1
        assert wait_for_status(server, 200).content == b""
        assert server.log().count("model loaded in ") == 1


def test_prediction_wait_is_bounded(gated_bundle: Path, tmp_path: Path) -> None:
    env = {"CUSTOM_MODEL_WORKERS": "1", "CUSTOM_MODEL_LOAD_WAIT": "0.2"}
    with serve(gated_bundle, tmp_path / "server.log", env=env, ready=False) as server:
        wait_for_status(server, 503)
        response = server.predict({"sqft": [1500]})
        assert response.status_code == 503 and "still loading" in response.json()["message"]


def assert_stops_within(server: Server, seconds: float) -> int:
    """SIGTERM to the server's own pid (gunicorn, exec'd by start_server.sh); it must be gone in time.

    Gone means the whole process group, workers included: a worker the master SIGKILLed as it
    left can still be dying for a moment after the master's exit, so the group is polled, and
    the bound covers the master and every worker.
    """
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=30)
    while time.monotonic() - started < seconds:
        try:
            os.killpg(server.process.pid, 0)
        except ProcessLookupError:
            break  # no worker outlived the master
        time.sleep(0.02)
    assert time.monotonic() - started < seconds, server.log()
    with pytest.raises(ProcessLookupError):
        os.killpg(server.process.pid, 0)
    return code


def test_sigterm_stops_the_server_within_5_seconds_with_keep_alive_connections(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "regression")
    with serve(bundle, tmp_path / "server.log", env={"CUSTOM_MODEL_WORKERS": "2"}) as server:
        session = requests.Session()  # a kept-alive connection, as real clients hold
        assert session.get(server.url("/"), timeout=5).status_code == 200
        idle = socket.create_connection(("127.0.0.1", server.port))
        idle.sendall(f"GET {server.prefix}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert idle.recv(1024).startswith(b"HTTP/1.1 200")
        try:
            assert assert_stops_within(server, 5.0) == 0
        finally:
            idle.close()
        assert "Shutting down: Master" in server.log()


def test_sigterm_during_a_slow_load_stops_within_5_seconds(gated_bundle: Path, tmp_path: Path) -> None:
    with serve(gated_bundle, tmp_path / "server.log", ready=False) as server:
        wait_for_status(server, 503)
        assert loading_markers(server)  # the workers are loading
        assert assert_stops_within(server, 5.0) == 0  # an orderly stop, not a failed load
        assert loading_markers(server) == []


def loading_markers(server: Server) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"cmkit-runtime-loading-{server.process.pid}-*"))


def failing_bundle(root: Path, load_body: str) -> Path:
    bundle = make_bundle(root, "regression")
    with (bundle / "custom.py").open("a") as handle:
        handle.write(f"\n\ndef load_model(code_dir):\n    {load_body}\n")
    return bundle


def run_to_exit(bundle: Path, log: Path, env: dict[str, str]) -> tuple[int, Server]:
    server = start(bundle, log, env=env)
    try:
        return server.process.wait(timeout=60), server  # it must exit by itself, not respawn workers forever
    finally:
        server.stop()


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_model_that_cannot_load_stops_the_server_with_code_4(tmp_path: Path, workers: str) -> None:
    bundle = failing_bundle(tmp_path, "raise FileNotFoundError('model.joblib is missing')")
    code, server = run_to_exit(bundle, tmp_path / "server.log", {"CUSTOM_MODEL_WORKERS": workers})
    log = server.log()
    assert code == 4, log  # whatever the number of workers failing at once
    assert "the model failed to load; stopping the server" in log
    assert "FileNotFoundError: model.joblib is missing" in log and "Traceback" in log
    assert "died while loading the model" in log and "HaltServer" not in log
    assert loading_markers(server) == []


def test_a_worker_killed_during_its_load_stops_the_server(tmp_path: Path) -> None:
    """What the kernel's OOM killer does: SIGKILL, no traceback. gunicorn alone would respawn forever."""
    bundle = failing_bundle(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    code, server = run_to_exit(bundle, tmp_path / "server.log", {"CUSTOM_MODEL_WORKERS": "2"})
    log = server.log()
    assert code == 4, log
    assert "was sent SIGKILL! Perhaps out of memory?" in log and "died while loading the model" in log
    assert loading_markers(server) == []


def test_without_the_hooks_a_failed_load_still_stops_gunicorn(tmp_path: Path) -> None:
    """The runtime's app under plain gunicorn (no cmkit-runtime hooks): the worker exits with code 4."""
    bundle = failing_bundle(tmp_path, "raise RuntimeError('no model')")
    log = tmp_path / "server.log"
    bind = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", bind, "--no-control-socket"]
    command.append("cmkit_runtime.server:create_app()")
    env = {**os.environ, "CODE_DIR": str(bundle)}
    env.pop("MODEL_SERVER_HALTS_ON_LOAD_FAILURE", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=bundle, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        assert process.wait(timeout=60) == 4
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert "App failed to load." in log.read_text()


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("", ""), ("/", ""), ("a/b/", "/a/b"), ("//deep/er//", "/deep/er"), ("/x.y/z-1", "/x.y/z-1")],
)
def test_url_prefix_is_normalised_at_start(tmp_path: Path, raw: str, normalised: str) -> None:
    bundle = make_bundle(tmp_path, "anomaly")
    with serve(bundle, tmp_path / "server.log", prefix=raw) as server:
        assert server.prefix == normalised
        assert requests.get(f"{server.root}{normalised}/", timeout=5).status_code == 200
        assert server.predict(sample_columns(bundle)).status_code == 200


def test_access_log_can_be_switched_on(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "anomaly")
    with serve(bundle, tmp_path / "server.log", env={"CUSTOM_MODEL_ACCESS_LOG": "1"}) as server:
        requests.get(server.url("/"), timeout=5)
        deadline = time.monotonic() + 10
        while f'"GET {server.prefix}/ HTTP/1.1" 200' not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f'"GET {server.prefix}/ HTTP/1.1" 200' in server.log()


@pytest.mark.parametrize("variable", ["CUSTOM_MODEL_WORKERS", "CUSTOM_MODEL_THREADS"])
def test_bad_worker_settings_exit_2_with_a_message(tmp_path: Path, variable: str) -> None:
    bundle = make_bundle(tmp_path, "anomaly")
    server = start(bundle, tmp_path / "server.log", env={variable: "many"})
    try:
        assert server.process.wait(timeout=30) == 2
    finally:
        server.stop()
    assert f"{variable} must be a positive integer" in server.log()


def test_no_flask_development_server_in_the_template_or_runtime() -> None:
    from tests.conftest import REPO

    for path in [*(REPO / "templates/bundles").rglob("*"), *(REPO / "cmkit_runtime").rglob("*")]:
        if path.is_file() and path.suffix in (".py", ".sh", ".tmpl"):
            # The runtime's .run() calls are gunicorn's: its application (cli.py) and its worker's
            # loop (inlineworker.py), never Flask's.
            allowed = {"cli.py": "Runtime().run()", "inlineworker.py": "super().run()"}.get(path.name, "")
            text = path.read_text().replace(allowed, "", 1) if allowed else path.read_text()
            assert ".run(" not in text and "werkzeug.serving" not in text and "flask run" not in text, path
