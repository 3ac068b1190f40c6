"""The runtime's request parsing and JSON writing, with orjson and with the stdlib fallback."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from cmkit_runtime.outputs import BadPredictions, format_predictions
from cmkit_runtime.target import Target
from tests.conftest import REPO


def load_server(hide_orjson: bool) -> ModuleType:
    """A fresh import of the runtime's server module, with or without orjson importable."""
    saved = sys.modules.get("orjson")
    if hide_orjson:
        sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail
    try:
        return importlib.reload(importlib.import_module("cmkit_runtime.server"))
    finally:
        if hide_orjson:
            if saved is None:
                del sys.modules["orjson"]
            else:
                sys.modules["orjson"] = saved


@pytest.fixture(params=[False, True], ids=["orjson", "stdlib-json"])
def server(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    module = load_server(request.param)
    assert (module.orjson is None) == request.param
    yield module


def test_frames_keep_the_dtypes_pandas_would_infer(server: ModuleType) -> None:
    columns = {"f": [1.5, 2.5], "i": [1, 2], "b": [True, False], "s": ["x", "y"], "n": [1.0, None], "e": [None, None]}
    frame = server.parse_request(server.dumps({"X": columns}))
    reference = pd.DataFrame(columns).astype({"e": float})  # all null: float64 NaN, as DRUM reads DataRobot's CSV
    assert list(frame.columns) == list(columns)
    assert frame.dtypes.to_dict() == reference.dtypes.to_dict()
    pd.testing.assert_frame_equal(frame, reference)


def test_all_numeric_columns_become_one_block(server: ModuleType) -> None:
    frame = server.parse_request(b'{"X": {"a": [1.0, 2.0], "b": [3.0, 4.0]}}')
    assert frame.to_numpy().tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert frame.dtypes.tolist() == [np.dtype("float64")] * 2


@pytest.mark.parametrize("body", [b"not json", b'{"X": {"a": [1, 2}', b"\xff\xfe"])
def test_bad_json_is_a_bad_request(server: ModuleType, body: bytes) -> None:
    with pytest.raises(server.BadRequest):
        server.parse_request(body)


def test_output_is_strict_json_and_takes_arrays(server: ModuleType) -> None:
    import json

    target = Target("regression")
    predictions = format_predictions(np.array([1.0, 2.5]), target, 2)
    assert json.loads(server.dumps({"predictions": predictions})) == {"predictions": [1.0, 2.5]}
    binary = Target("binary", ("yes", "no"))
    rows = format_predictions(np.array([0.25]), binary, 1)
    assert json.loads(server.dumps({"predictions": rows})) == {"predictions": [{"yes": 0.25, "no": 0.75}]}
    with pytest.raises(BadPredictions):
        format_predictions(np.array([np.nan]), target, 1)


def test_no_bundle_in_the_repository_carries_a_server() -> None:
    # The runtime is the only server: templates and sample bundles hold the model alone.
    bundles = [REPO / "templates" / "bundles", REPO / "sample_models"]
    copies = [p for root in bundles for name in ("server.py", "gunicorn.conf.py") for p in root.rglob(name)]
    assert copies == []


def test_workers_loading_counts_the_live_workers_markers_of_one_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import tempfile

    from cmkit_runtime import workers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    master = 4_000_001  # no such process: the markers are named, not checked, by master pid
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        for pid in (alive.pid, gone.pid):
            Path(workers.loading_marker(master, pid)).touch()
        Path(workers.loading_marker(master + 1, alive.pid)).touch()  # another master's worker
        (tmp_path / f"{Path(workers.loading_marker(master, 0)).name[:-1]}notapid").touch()
        assert Path(workers.loading_marker(master, alive.pid)).parent == tmp_path
        assert workers.workers_loading(master) == 1  # the dead worker's leftover marker is not counted
        assert workers.workers_loading(master + 2) == 0
    finally:
        alive.kill()
        alive.wait()


MODEL = """
def load_model(code_dir):
    return None


def predict(model, X):
    if "boom" in X.columns:
        raise ValueError("boom")
    return [0.5] * (len(X) + (1 if "extra" in X.columns else 0))
"""


def test_the_app_answers_422_and_500_with_the_reason(tmp_path: Path) -> None:
    """Through Flask's test client: malformed requests, a raising predict(), a wrong count."""
    import time

    from cmkit_runtime.server import create_app

    (tmp_path / "custom.py").write_text(MODEL)
    client = create_app(tmp_path, {"TARGET_TYPE": "Regression"}).test_client()
    deadline = time.monotonic() + 30
    while client.get("/").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    ok = client.post("/predict_no_state/", json={"X": {"a": [1, 2]}})
    assert ok.status_code == 200 and ok.get_json() == {"predictions": [0.5, 0.5]}
    for body, says in (
        ({"X": {"a": 1}}, "column 'a' must be a list"),
        ({"X": {"a": [1, 2], "b": [1]}}, "'a' has 2, 'b' has 1"),
    ):
        refused = client.post("/predict_no_state/", json=body)
        assert refused.status_code == 422 and says in refused.get_json()["message"]
    raised = client.post("/predict_no_state/", json={"X": {"boom": [1]}})
    assert raised.status_code == 500 and "raised ValueError: boom" in raised.get_json()["message"]
    miscounted = client.post("/predict_no_state/", json={"X": {"extra": [1]}})
    assert miscounted.status_code == 500 and "2" in miscounted.get_json()["message"]
    assert client.get("/nope").status_code == 404 and client.get("/predict_no_state/").status_code == 405
