"""test-local on transform models, in both runtimes, and cmkit-runtime's answers against DRUM's server.

`cmkit init --target-type transform` passes on the first try (errorCheck and nullValueImputation
on /transform/; the checks that compare predictions do not apply); a transform that drops rows
fails errorCheck with DRUM's one line; and `drum server` (DRUM 1.18, bench/'s virtualenv) answers
the same parts, byte for byte, and the same refusal, for the same custom.py and rows, CSV or
sparse Matrix Market; `cmkit predict` writes `drum score`'s bytes for both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from email.parser import BytesParser
from pathlib import Path

import pandas as pd
import pytest

from cmkit.checks.client import RawAnswer
from cmkit.checks.results import ERROR_CHECK, LONG_RUNNING_SERVICE, NULL_VALUE_IMPUTATION, SIDE_EFFECTS
from cmkit.checks.transform import NOT_APPLICABLE, SPARSE_NO_NULLS, read_answer, request_body
from cmkit.engine.base import free_port
from cmkit.scaffold import init_bundle, make_spec
from cmkit_runtime.transform import ROWS_CHANGED
from tests.conftest import REPO
from tests.support.bundles import write_runtime_bundle
from tests.support.inprocess import loaded_client
from tests.testlocal.test_samples import RUNTIMES, run
from tests.testlocal.test_unstructured_local import THIS_RUNTIME

DROPS_ROWS = """
def load_model(code_dir):
    return None


def transform(data, model):
    return data.dropna()
"""


def _statuses(document: dict[str, object]) -> dict[str, tuple[str, str]]:
    testing = document["testingStatus"]
    assert isinstance(testing, dict)
    return {name: (entry["status"], entry["message"]) for name, entry in testing.items()}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_init_s_transform_passes(runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = tmp_path / "features"
    init_bundle(bundle, make_spec("transform", "features"))
    results = _statuses(run(bundle, runtime, request, server_environment=THIS_RUNTIME))
    assert results[LONG_RUNNING_SERVICE][0] == "succeeded", results
    assert results[ERROR_CHECK] == ("succeeded", "10 rows transformed into 6 columns"), results
    assert results[NULL_VALUE_IMPUTATION] == ("succeeded", "all 4 columns pass when null"), results
    assert results[SIDE_EFFECTS] == ("skipped", NOT_APPLICABLE)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_transform_that_drops_rows_fails_the_error_check(
    runtime: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = write_runtime_bundle(tmp_path / "drops", "transform", "drops", DROPS_ROWS)
    results = _statuses(run(bundle, runtime, request, server_environment=THIS_RUNTIME))
    status, message = results[ERROR_CHECK]
    assert status == "failed" and "\n" not in message
    assert message == f"HTTP 500: {ROWS_CHANGED}", message
    assert results[NULL_VALUE_IMPUTATION][0] == "aborted"


# -- against DRUM's own server ---------------------------------------------------------------------

TWO_WAYS = """
def load_model(code_dir):
    return 2


def transform(data, model):
    if "drop" in data.columns:
        return data.iloc[1:]
    out = data.copy()
    numbers = out.select_dtypes("number").columns
    out[numbers] = out[numbers].fillna(0)
    out["total"] = out.sum(axis=1, numeric_only=True) * model
    return out
"""


def _drum_server(bundle: Path, port: int) -> subprocess.Popen[bytes]:
    from bench.common import drum_with

    drum = drum_with() / "bin" / "drum"
    command = [str(drum), "server", "--code-dir", str(bundle), "--target-type", "transform"]
    with (bundle.parent / "drum.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        # Its own session: drum runs gunicorn as a child, and the whole group is ended after.
        server = subprocess.Popen(
            [*command, "--address", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return server
        except OSError:  # refused, reset or timed out while DRUM starts
            if server.poll() is not None or time.monotonic() > deadline:
                _stop(server)
                raise AssertionError((bundle.parent / "drum.log").read_text()[-2000:]) from None
            time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _drum_post(port: int, body: bytes, content_type: str) -> RawAnswer:
    sent = urllib.request.Request(
        f"http://127.0.0.1:{port}/transform/", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return RawAnswer(answer.status, answer.headers["Content-Type"], answer.read())
    except urllib.error.HTTPError as exc:
        return RawAnswer(exc.code, exc.headers["Content-Type"], exc.read())


def _fields(answer: RawAnswer) -> dict[str, bytes]:
    message = BytesParser().parsebytes(f"Content-Type: {answer.content_type}\r\n\r\n".encode() + answer.body)
    parts = message.get_payload()
    assert isinstance(parts, list)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in parts}


@pytest.mark.slow
def test_drum_and_cmkit_answer_the_same_parts(tmp_path: Path) -> None:
    bundle = write_runtime_bundle(tmp_path / "both", "transform", "both", TWO_WAYS)
    (bundle / "start_server.sh").unlink()
    requests = {
        "mixed": pd.DataFrame({"a": [1.5, None, 3], "b": ["x", "y", None], "c": [1, 2, 3]}),
        "one column": pd.DataFrame({"a": [1.0, None, 2.0]}),
        "text with commas": pd.DataFrame({"t": ['a "quoted", text', "é", ""], "n": [1, 2, 3]}),
        "drop": pd.DataFrame({"drop": [1, 2]}),
    }
    port = free_port()
    drum = _drum_server(bundle, port)
    try:
        with loaded_client(bundle, {}) as client:
            for name, frame in requests.items():
                body, content_type = request_body(frame, "rows.csv")
                theirs = _drum_post(port, body, content_type)
                mine = client.post("/transform/", data=body, headers={"Content-Type": content_type})
                ours = RawAnswer(mine.status_code, mine.headers["Content-Type"], mine.data)
                assert ours.status == theirs.status, name
                if name == "drop":
                    assert json.loads(ours.body) == {"message": ROWS_CHANGED}
                    assert json.loads(theirs.body) == {"message": f"ERROR: {ROWS_CHANGED}"}  # DRUM's prefix
                    continue
                assert _fields(ours) == _fields(theirs), name  # every part, byte for byte
                assert read_answer(theirs, len(frame)).problem is None  # the check reads DRUM's answer too
    finally:
        _stop(drum)


# -- sparse (Matrix Market) rows, against DRUM's server and `drum score` ---------------------------

SPARSE = """
def load_model(code_dir):
    return 3


def transform(data, model):
    if not hasattr(data, "sparse"):
        return data.fillna(0) * model
    if "dense" in data.columns:
        return data.sparse.to_dense() * model
    if "drop" in data.columns:
        return data.iloc[1:]
    return data * model
"""
MATRIX = [[1.5, 0, 0], [0, 0, 2], [0, 0, 0], [4, 0, 0.25], [0, 1e-17, 123456789.125]]


def _sparse_files(folder: Path) -> dict[str, Path]:
    """A .mtx of five rows, three column files (names, a "dense" first name, a "drop" one) and a CSV."""
    import scipy.io
    import scipy.sparse

    folder.mkdir()
    scipy.io.mmwrite(folder / "rows.mtx", scipy.sparse.coo_matrix(MATRIX))
    files = {"mtx": folder / "rows.mtx", "csv": folder / "rows.csv"}
    files["csv"].write_text("a,b,c\n1.5,,0\n0,0,2\n")
    for name, text in {"names": "a\n b c \nc\n", "dense": "dense\nb\nc\n", "drop": "drop\nb\nc\n"}.items():
        files[name] = folder / f"{name}.txt"
        files[name].write_text(text)
    return files


def _multipart_files(parts: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    from cmkit.checks.transform import form_body

    return form_body([(key, filename, "application/octet-stream", data) for key, (filename, data) in parts.items()])


@pytest.mark.slow
def test_drum_and_cmkit_answer_the_same_sparse_parts(tmp_path: Path) -> None:
    bundle = write_runtime_bundle(tmp_path / "sparse", "transform", "sparse", SPARSE)
    (bundle / "start_server.sh").unlink()
    files = _sparse_files(tmp_path / "in")
    matrix = files["mtx"].read_bytes()
    requests: dict[str, tuple[bytes, str]] = {
        "named": _multipart_files({"X": ("rows.mtx", matrix), "X.colnames": ("n", files["names"].read_bytes())}),
        "numbered": _multipart_files({"X": ("rows.mtx", matrix)}),
        "dense answer": _multipart_files({"X": ("rows.mtx", matrix), "X.colnames": ("n", files["dense"].read_bytes())}),
        "body": (matrix, "text/mtx"),
        "csv target": _multipart_files({"X": ("rows.mtx", matrix), "y": ("y.csv", b"t\n1\n0\n1\n0\n1\n")}),
    }
    port = free_port()
    drum = _drum_server(bundle, port)
    try:
        with loaded_client(bundle, {}) as client:
            for name, (body, content_type) in requests.items():
                theirs = _drum_post(port, body, content_type)
                mine = client.post("/transform/", data=body, headers={"Content-Type": content_type})
                assert (mine.status_code, theirs.status) == (200, 200), (name, mine.data, theirs.body)
                ours = RawAnswer(mine.status_code, mine.headers["Content-Type"], mine.data)
                assert list(_fields(ours).items()) == list(_fields(theirs).items()), name  # parts, order and bytes
                assert read_answer(theirs, len(MATRIX)).problem is None, name  # the check reads DRUM's answer too
            body, content_type = _multipart_files({"X": ("rows.mtx", matrix), "X.colnames": ("n", b"drop\nb\nc\n")})
            assert _drum_post(port, body, content_type).status == 500
            assert client.post("/transform/", data=body, headers={"Content-Type": content_type}).status_code == 500
    finally:
        _stop(drum)


@pytest.mark.slow
@pytest.mark.parametrize("data", ["mtx", "csv"])
def test_predict_writes_drum_scores_bytes(data: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cmkit.cli import main
    from tests.support.drum import drum_score_file

    bundle = write_runtime_bundle(tmp_path / "sparse", "transform", "sparse", SPARSE)
    rows = _sparse_files(tmp_path / "in")[data]
    theirs = drum_score_file(bundle, rows, "transform", ())
    output = tmp_path / "mine.csv"
    flags = ["--input", str(rows), "--output", str(output), "--runtime", "process", "--no-reuse"]
    result = CliRunner().invoke(main, ["predict", str(bundle), *flags, "--env", f"PYTHONPATH={REPO}"])
    assert result.exit_code == 0, result.output
    assert output.read_bytes() == theirs.read_bytes()


@pytest.mark.slow
def test_predict_sends_the_column_file_as_drums_server_gets_it(tmp_path: Path) -> None:
    """`drum score` drops --sparse-column-file for transforms (DRUM 1.18.1's own TODO); its server
    takes the names as X.colnames, and so does cmkit: the model sees them."""
    from click.testing import CliRunner

    from cmkit.cli import main

    bundle = write_runtime_bundle(tmp_path / "sparse", "transform", "sparse", SPARSE)
    files = _sparse_files(tmp_path / "in")
    flags = ["--input", str(files["mtx"]), "--sparse-column-file", str(files["names"]), "--runtime", "process"]
    result = CliRunner().invoke(main, ["predict", str(bundle), *flags, "--no-reuse", "--env", f"PYTHONPATH={REPO}"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["a,b c,c", "4.5,0.0,0.0"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_sparse_dataset_passes_test_local(runtime: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bundle = write_runtime_bundle(tmp_path / "sparse", "transform", "sparse", SPARSE)
    with (bundle / "requirements.txt").open("a") as requirements:  # the model's dependency (DRUM's has it)
        requirements.write("scipy==1.17.1\n")
    files = _sparse_files(tmp_path / "in")
    options = {"dataset": files["mtx"], "sparse_column_file": files["names"], "server_environment": THIS_RUNTIME}
    results = _statuses(run(bundle, runtime, request, **options))
    assert results[ERROR_CHECK] == ("succeeded", "5 rows transformed into 3 columns (sparse)"), results
    assert results[NULL_VALUE_IMPUTATION] == ("skipped", SPARSE_NO_NULLS)
