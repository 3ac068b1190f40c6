"""`cmkit predict`: a CSV predicted through test-local's runtime, in `drum score`'s columns."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmkit.cli import main
from cmkit.predict import as_drum_frame, drum_columns
from cmkit_runtime.target import Target
from tests.support.bundles import linear_prediction, write_quick_bundle

PROCESS = ["--runtime", "process"]


def test_stdin_to_stdout_in_drums_shape(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    rows = "a,b\n1.0,2\n,4\n"
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS], input=rows)
    assert result.exit_code == 0, result.stderr
    read = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [float(r["Predictions"]) for r in read] == [linear_prediction("1.0", "2"), linear_prediction("", "4")]
    assert "predicted 2 rows" in result.stderr


def test_a_file_to_a_file_and_json(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    output = tmp_path / "predictions.csv"
    flags = ["--input", str(bundle / "data" / "sample.csv"), "--output", str(output), "--json"]
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS, *flags])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] and document["rows"] == 20 and document["diagnosis"] is None
    assert output.read_text().splitlines()[0] == "Predictions" and len(output.read_text().splitlines()) == 21


def test_a_model_that_does_not_start_is_diagnosed(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle", behaviour="crash_at_start")
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS, "--json"], input="a,b\n1,2\n")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["predictions"] is None and document["diagnosis"]["code"] == "server-exited"
    assert "server-exited: the server exited with code 3 before it was ready" in result.stderr
    assert "cannot load the model: crash_at_start" in result.stderr  # the evidence


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS], input="")
    assert result.exit_code == 2 and "the dataset is empty" in result.stderr


def test_classifier_columns_are_drums() -> None:
    binary = Target("binary", ("yes", "no"))
    assert drum_columns(binary) == ["no", "yes"]  # DRUM: negative, then positive
    frame = as_drum_frame([[0.25, 0.75]], binary)  # errorCheck's values: in the target's label order
    assert frame.to_dict(orient="records") == [{"no": 0.75, "yes": 0.25}]
    assert drum_columns(Target("multiclass", ("a", "b", "c"))) == ["a", "b", "c"]


def test_predict_reuses_the_server_cmkit_serve_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmkit.predict import predict_bundle
    from cmkit.serve import serve_bundle
    from cmkit.testlocal import TestLocalConfig
    from cmkit.warmserver import find_warm_server, notes_dir

    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = write_quick_bundle(tmp_path / "bundle")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2\n")
    config = TestLocalConfig(bundle, runtime="process", startup_timeout=10)
    session = serve_bundle(config, startup_timeout=10)
    try:
        warm = predict_bundle(config, rows)
        assert warm.warm_server == session.url and warm.ok
        assert float(warm.predictions["Predictions"][0]) == linear_prediction("1.0", "2")  # type: ignore[index]
        assert session.server.exit_info() is None  # left running for its serve
        assert predict_bundle(config, rows, reuse=False).warm_server is None
        other = TestLocalConfig(bundle, runtime="process", startup_timeout=10, target_type="anomaly")
        assert predict_bundle(other, rows).warm_server is None  # other variables: another server
        (bundle / "behaviour.txt").write_text("good\n")  # saved since the server loaded it
        assert predict_bundle(config, rows).warm_server is None
    finally:
        session.close()
    assert not list(notes_dir().glob("*.json"))  # the note goes with the server
    assert find_warm_server(bundle, {}) is None


def test_a_note_whose_serve_is_gone_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import subprocess

    from cmkit.warmserver import contract_digest, find_warm_server, fingerprint, notes_dir

    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    bundle = write_quick_bundle(tmp_path / "bundle").resolve()
    finished = subprocess.Popen(["true"])  # a pid whose process has ended
    finished.wait()

    notes_dir().mkdir(parents=True)
    note = notes_dir() / f"{hashlib.sha256(str(bundle).encode()).hexdigest()[:16]}-{finished.pid}.json"
    note.write_text(
        json.dumps(
            {
                "version": 1,
                "bundle": str(bundle),
                "url": "http://127.0.0.1:9/m",
                "urlPrefix": "/m",
                "runtime": "process",
                "pid": finished.pid,
                "contract": contract_digest({}),
                "fingerprint": fingerprint(bundle),
            }
        )
    )
    assert find_warm_server(bundle, {}) is None and not note.exists()


def test_a_sparse_input_is_for_transform_models(tmp_path: Path) -> None:
    bundle = write_quick_bundle(tmp_path / "bundle")
    rows = tmp_path / "rows.mtx"
    rows.write_text("%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 2\n")
    result = CliRunner().invoke(main, ["predict", str(bundle), *PROCESS, "--input", str(rows)])
    assert result.exit_code == 2
    assert "a sparse (.mtx) dataset is for transform models; this one is regression" in result.stderr


def test_a_transform_s_rows_go_to_its_route_and_its_frame_comes_back(tmp_path: Path) -> None:
    """predict's transform path on cmkit-runtime's app in this process (the bytes against drum
    score are tests/testlocal/test_transform_local.py's, slow): a CSV, then a .mtx with names."""
    from cmkit.checks.dataset import load_dataset
    from cmkit.checks.sparse import load_sparse
    from cmkit.predict import _predict
    from cmkit.resolvedrun import TestLocalConfig, resolve_config
    from tests.checks.test_seven_checks import InProcessServer
    from tests.support.bundles import write_runtime_bundle

    custom = "def load_model(code_dir):\n    return 2\n\n\ndef transform(data, model):\n    return data * model\n"
    bundle = write_runtime_bundle(tmp_path / "t", "transform", "t", custom)
    run = resolve_config(TestLocalConfig(bundle=bundle, runtime="process"))
    (tmp_path / "rows.csv").write_text("a,b\n1,2.5\n3,4\n")
    (tmp_path / "rows.mtx").write_text("%%MatrixMarket matrix coordinate real general\n2 2 2\n1 1 1.5\n2 2 3\n")
    (tmp_path / "names.txt").write_text("left\nright\n")
    server = InProcessServer(bundle)
    try:
        dense = _predict(server, run, load_dataset(tmp_path / "rows.csv"), "r1", None)
        sparse = _predict(server, run, load_sparse(tmp_path / "rows.mtx", tmp_path / "names.txt"), "r2", None)
        numbered = _predict(server, run, load_sparse(tmp_path / "rows.mtx"), "r3", None)
    finally:
        server.stop()
    assert dense.predictions is not None and dense.predictions.to_csv(index=False) == "a,b\n2,5.0\n6,8.0\n"
    assert sparse.predictions is not None and sparse.predictions.to_csv(index=False) == "left,right\n3.0,0.0\n0.0,6.0\n"
    assert numbered.predictions is not None and list(numbered.predictions.columns) == ["0", "1"]
