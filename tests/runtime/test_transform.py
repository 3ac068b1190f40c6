"""Transform models in cmkit-runtime: transform() called and answered on /transform/ as DRUM 1.18 does.

DRUM's rules (its prediction server's `_transform` and Python model adapter), held here through the
runtime's WSGI app: the features as a CSV under the form key `X` or as the body, the target under
`y`; `transform(data, model)` or `(data, model, y)`; a frame of as many rows out, written as
DRUM's multipart answer (`X.format`, `X.transformed`, then `y.*` when sent); DRUM's messages for
a transform that changes the row count, returns a target, or gets no samples.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from email.parser import BytesParser
from pathlib import Path

import pandas as pd
import pytest
from flask.testing import FlaskClient

from cmkit.checks.client import RawAnswer
from cmkit.checks.transform import read_answer, request_body
from cmkit_runtime.transform import ROWS_CHANGED, csv_payload, multipart
from tests.support.bundles import write_runtime_bundle
from tests.support.inprocess import forget_bundle, loaded_client

# ?-less: the request's columns say what to do (a column named "mode" picks the misbehaviour).
HOOKS = """
import pandas as pd


def load_model(code_dir):
    return 10


def transform(data, model, y=None):
    mode = str(data["mode"].iloc[0]) if "mode" in data else "scale"
    if mode == "drop":
        return data.iloc[1:]
    if mode == "tuple":
        return data, y
    if mode == "array":
        return data[["a"]].to_numpy() * model
    if mode == "raise":
        raise RuntimeError("boom")
    out = data.copy()
    out["a"] = out["a"].fillna(0) * model
    out[" spaced "] = 1 if y is None else len(y)
    return out
"""
ROWS = b"a,b\n1,x\n,y\n3,z\n"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    bundle = write_runtime_bundle(tmp_path / "t", "transform", "t", HOOKS)
    with loaded_client(bundle, {"URL_PREFIX": "/p"}, "/p") as test_client:
        yield test_client


def _fields(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = message.get_payload()
    assert isinstance(parts, list)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in parts}


def _post(client: FlaskClient, rows: bytes, y: bytes | None = None) -> tuple[int, str, bytes]:
    data: dict[str, tuple[io.BytesIO, str]] = {"X": (io.BytesIO(rows), "X.csv")}
    if y is not None:
        data["y"] = (io.BytesIO(y), "y.csv")
    response = client.post("/p/transform/", data=data, content_type="multipart/form-data")
    return response.status_code, response.headers["Content-Type"], response.data


def test_the_answer_is_drums_multipart_with_drums_csv(client: FlaskClient) -> None:
    status, content_type, body = _post(client, ROWS)
    assert status == 200 and content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=")[1]
    assert len(boundary) == 32 and body.startswith(f"--{boundary}\r\n".encode())
    expected = b"a,b,spaced\r\n10.0,x,1\r\n0.0,y,1\r\n30.0,z,1"  # names stripped, \r\n, no final line end
    assert _fields(content_type, body) == {"X.format": b"csv", "X.transformed": expected}
    assert body == multipart([("X", expected)], boundary)  # the bytes DRUM's encoder writes
    read = read_answer(RawAnswer(status, content_type, body), 3)
    assert read.problem is None and read.frame is not None and list(read.frame.columns) == ["a", "b", "spaced"]


def test_a_target_goes_to_a_three_argument_hook_and_back_unchanged(client: FlaskClient) -> None:
    status, content_type, body = _post(client, ROWS, b"t\n1\n0\n1\n")
    fields = _fields(content_type, body)
    assert status == 200 and list(fields) == ["X.format", "X.transformed", "y.format", "y.transformed"]
    assert fields["X.transformed"].endswith(b"30.0,z,3") and fields["y.transformed"] == b"t\r\n1\r\n0\r\n1"


def test_the_body_may_be_the_csv(client: FlaskClient) -> None:
    response = client.post("/p/transform/", data=ROWS, content_type="text/csv")
    assert response.status_code == 200 and b"30.0,z,1" in response.data


@pytest.mark.parametrize(
    ("mode", "status", "message"),
    [
        ("drop", 500, ROWS_CHANGED),
        ("tuple", 500, "Transformation of the target variable is not supported by DRUM."),
        ("raise", 500, "transform() raised RuntimeError: boom"),
    ],
)
def test_drums_refusals(client: FlaskClient, mode: str, status: int, message: str) -> None:
    rows = f"a,mode\n1,{mode}\n2,{mode}\n".encode()
    code, _content_type, body = _post(client, rows)
    assert (code, json.loads(body)) == (status, {"message": message})
    read = read_answer(RawAnswer(code, "application/json", body), 2)
    assert read.problem == f"HTTP {status}: {message}"


def test_an_array_is_a_frame(client: FlaskClient) -> None:
    status, content_type, body = _post(client, b"a,mode\n1,array\n2,array\n")
    assert status == 200 and _fields(content_type, body)["X.transformed"] == b"0\r\n10\r\n20"


def test_no_samples_and_other_routes(client: FlaskClient) -> None:
    response = client.post("/p/transform/")
    assert response.status_code == 422 and "under `X` form-data param key" in response.json["message"]  # type: ignore[index]
    assert client.post("/p/predict_no_state/", json={"X": {"a": [1]}}).status_code == 404
    assert client.get("/p/capabilities/").json["predictionRoutes"] == ["/transform/"]  # type: ignore[index]


def test_the_check_counts_rows_whoever_serves() -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    body = multipart([("X", csv_payload(frame))], "b0")
    assert read_answer(RawAnswer(200, "multipart/form-data; boundary=b0", body), 2).problem is None
    short = read_answer(RawAnswer(200, "multipart/form-data; boundary=b0", body), 3).problem
    assert short == "the transform returned 2 rows for 3: it must keep every row"
    assert read_answer(RawAnswer(200, "text/csv", b"a\n1"), 1).problem == (
        "the answer is text/csv, not multipart/form-data"
    )
    other = multipart([("Z", b"a\r\n1")], "b1")
    assert "no X.transformed part (parts: Z.format, Z.transformed)" in str(
        read_answer(RawAnswer(200, "multipart/form-data; boundary=b1", other), 1).problem
    )
    sent, content_type = request_body(frame, "rows.csv")
    assert content_type.startswith("multipart/form-data; boundary=") and b'filename="rows.csv"' in sent


def test_a_model_without_the_hook_that_is_not_scikit_learn_does_not_load(tmp_path: Path) -> None:
    from cmkit_runtime.loader import LoadError, load
    from cmkit_runtime.target import Target

    bundle = write_runtime_bundle(tmp_path / "n", "transform", "n", "def load_model(code_dir):\n    return 1\n")
    forget_bundle(bundle)
    with pytest.raises(LoadError, match="requires a user-defined transform hook for non-sklearn transformers"):
        load(bundle, Target("transform"))
    forget_bundle(bundle)


def test_what_is_refused_before_and_after_the_hook() -> None:
    from cmkit_runtime import transform as tf

    def as_given(data: pd.DataFrame, model: object) -> object:
        return model

    with pytest.raises(tf.BadTransform, match="must take 2 or 3 arguments; hook provided takes 1"):
        tf.hook_transformer(lambda data: data, None)
    rows = pd.DataFrame({"a": [1, 2]})
    with pytest.raises(tf.BadTransform, match="transform must return a dataframe, but received <class 'list'>"):
        tf.transformed(tf.hook_transformer(as_given, [1, 2]), rows, None)
    blank = pd.DataFrame({"  ": [1, 2]})
    with pytest.raises(tf.BadTransform, match="Ensure there are no column names made up entirely of whitespace"):
        tf.transformed(tf.hook_transformer(as_given, blank), rows, None)
    with pytest.raises(tf.BadTransform, match="the CSV cannot be read") as raised:
        tf.read_csv(b"")
    assert raised.value.status == 422
    with pytest.raises(tf.BadTransform, match="encoding must be UTF-8"):
        tf.read_csv(b"a\n\xff\xfe\n")
    assert tf.read_csv(b"a\n1\n\n2\n")["a"].isna().tolist() == [False, True, False]  # one column: blank lines kept


def test_sparse_input_is_refused_and_a_scikit_learn_like_transformer_serves_alone() -> None:
    from werkzeug.datastructures import FileStorage

    from cmkit_runtime import transform as tf

    mtx = FileStorage(io.BytesIO(b"%%MatrixMarket"), filename="X.mtx")
    with pytest.raises(tf.BadTransform, match="sparse"):
        tf.request_frames({"X": mtx}, b"", "multipart/form-data")
    with pytest.raises(tf.BadTransform, match="sparse"):
        tf.request_frames({}, b"1 1 1", "text/mtx")

    class sklearnDoubler:  # DRUM's test is the class's printed name holding "sklearn"
        def transform(self, data: pd.DataFrame) -> object:
            return data.to_numpy() * 2

    run = tf.artifact_transformer(sklearnDoubler())
    assert run is not None and run(pd.DataFrame({"a": [1, 2]}), None)[0].tolist() == [2, 4]
    assert tf.artifact_transformer(object()) is None
