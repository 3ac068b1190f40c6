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
import re
import sys
from collections.abc import Iterator
from email.parser import BytesParser
from pathlib import Path

import pandas as pd
import pytest
from flask.testing import FlaskClient

from cmkit.checks.client import RawAnswer
from cmkit.checks.transform import read_answer, request_body
from cmkit_runtime.transform import ROWS_CHANGED, csv_fields, csv_payload, multipart
from tests.support.bundles import write_runtime_bundle
from tests.support.inprocess import forget_bundle, loaded_client

# ?-less: the request's columns say what to do (a column named "mode" picks the misbehaviour).
HOOKS = """
import pandas as pd


def load_model(code_dir):
    return 10


def transform(data, model, y=None):
    if hasattr(data, "sparse"):  # a .mtx: every column sparse, as DRUM reads it
        return data.sparse.to_dense() * model if "dense" in data.columns else data * model
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
    assert body == multipart(csv_fields("X", expected), boundary)  # the bytes DRUM's encoder writes
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
    body = multipart(csv_fields("X", csv_payload(frame)), "b0")
    assert read_answer(RawAnswer(200, "multipart/form-data; boundary=b0", body), 2).problem is None
    short = read_answer(RawAnswer(200, "multipart/form-data; boundary=b0", body), 3).problem
    assert short == "the transform returned 2 rows for 3: it must keep every row"
    assert read_answer(RawAnswer(200, "text/csv", b"a\n1"), 1).problem == (
        "the answer is text/csv, not multipart/form-data"
    )
    other = multipart(csv_fields("Z", b"a\r\n1"), "b1")
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


# -- sparse (Matrix Market) data, as DRUM 1.18.1 takes and answers it -------------------------------

# Rows 4 x 3 with four entries; DRUM's colnames file is stripped line by line.
MATRIX = [[1.5, 0, 0], [0, 0, 2], [0, 0, 0], [4, 0, 0.25]]


def _mtx(rows: list[list[float]] = MATRIX) -> bytes:
    import scipy.io
    import scipy.sparse

    sink = io.BytesIO()
    scipy.io.mmwrite(sink, scipy.sparse.coo_matrix(rows))
    return sink.getvalue()


def _post_sparse(client: FlaskClient, names: bytes | None) -> tuple[int, str, bytes]:
    data: dict[str, tuple[io.BytesIO, str]] = {"X": (io.BytesIO(_mtx()), "rows.mtx")}
    if names is not None:
        data["X.colnames"] = (io.BytesIO(names), "names.txt")
    response = client.post("/p/transform/", data=data, content_type="multipart/form-data")
    return response.status_code, response.headers["Content-Type"], response.data


def test_sparse_rows_reach_the_hook_sparse_and_a_sparse_frame_is_answered_as_a_matrix(client: FlaskClient) -> None:
    status, content_type, body = _post_sparse(client, b"a\n b c \nc\n")
    assert status == 200
    fields = _fields(content_type, body)
    assert list(fields) == ["X.format", "X.transformed", "X.colnames"]  # DRUM's order
    assert fields["X.format"] == b"sparse" and fields["X.colnames"] == b"a\nb c\nc"
    # scipy.io.mmwrite of the frame's to_coo(), column by column, as DRUM's answer holds it.
    entries = b"1 1 1.5E1\n4 1 4E1\n2 3 2E1\n4 3 2.5\n"
    assert fields["X.transformed"] == b"%%MatrixMarket matrix coordinate real general\n%\n4 3 4\n" + entries
    read = read_answer(RawAnswer(status, content_type, body), 4)
    assert read.problem is None and read.frame is None and read.columns == ["a", "b c", "c"]
    from cmkit.checks.transform import answer_frame

    assert answer_frame(read).to_csv(index=False) == "a,b c,c\n15.0,0.0,0.0\n0.0,0.0,20.0\n0.0,0.0,0.0\n40.0,0.0,2.5\n"
    assert read_answer(RawAnswer(status, content_type, body), 3).problem == (
        "the transform returned 4 rows for 3: it must keep every row"
    )


def test_a_sparse_body_has_numbered_columns_and_a_dense_frame_goes_back_as_csv(client: FlaskClient) -> None:
    response = client.post("/p/transform/", data=_mtx(), content_type="text/mtx")
    fields = _fields(response.headers["Content-Type"], response.data)
    assert response.status_code == 200 and fields["X.colnames"] == b"0\n1\n2"
    status, content_type, body = _post_sparse(client, b"dense\nb\nc\n")
    expected = b"dense,b,c\r\n15.0,0.0,0.0\r\n0.0,0.0,20.0\r\n0.0,0.0,0.0\r\n40.0,0.0,2.5"
    assert status == 200 and _fields(content_type, body) == {"X.format": b"csv", "X.transformed": expected}


@pytest.mark.parametrize(
    ("names", "data", "message"),
    [
        (b"a\nb\n", None, "X.colnames names 2 columns, the matrix has 3"),
        (b"\xff\n", None, "X.colnames must be UTF-8 text, one column name a line"),
        (None, b"%%MatrixMarket matrix coordinate real general\n2 2 1\n9 9 1\n", "the .mtx cannot be read: "),
    ],
)
def test_sparse_input_that_cannot_be_read_is_a_422(
    client: FlaskClient, names: bytes | None, data: bytes | None, message: str
) -> None:
    files: dict[str, tuple[io.BytesIO, str]] = {"X": (io.BytesIO(data or _mtx()), "rows.mtx")}
    if names is not None:
        files["X.colnames"] = (io.BytesIO(names), "names.txt")
    response = client.post("/p/transform/", data=files, content_type="multipart/form-data")
    assert response.status_code == 422 and response.json["message"].startswith(message)  # type: ignore[index]


def test_without_scipy_sparse_data_is_one_line_naming_what_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.datastructures import FileStorage

    from cmkit.checks.sparse import NEEDS_SCIPY, read_matrix
    from cmkit.errors import InputError
    from cmkit_runtime import transform as tf

    monkeypatch.setitem(sys.modules, "scipy.io", None)  # what `import scipy.io` meets where SciPy is absent
    with pytest.raises(tf.BadTransform, match=r"add scipy to the bundle's requirements\.txt") as raised:
        tf.request_frames(
            {"X": FileStorage(io.BytesIO(b"%%MatrixMarket"), filename="X.mtx")}, b"", "multipart/form-data"
        )
    assert raised.value.status == 500 and "\n" not in str(raised.value)
    with pytest.raises(InputError, match=re.escape(NEEDS_SCIPY)):
        read_matrix(b"%%MatrixMarket", None)


def test_a_sparse_target_and_a_dense_array_matrix_are_read() -> None:
    import scipy.io
    from werkzeug.datastructures import FileStorage

    from cmkit_runtime import transform as tf

    dense = io.BytesIO()
    scipy.io.mmwrite(dense, [[1.0, 2.0], [3.0, 4.0]])  # the format's "array" variant
    files = {
        "X": FileStorage(io.BytesIO(dense.getvalue()), filename="X.mtx"),
        "y": FileStorage(io.BytesIO(_mtx()), filename="y.mtx"),
    }
    features, target = tf.request_frames(files, b"", "multipart/form-data")
    assert hasattr(features, "sparse") and features.shape == (2, 2) and target is not None and target.shape == (4, 3)


def test_a_scikit_learn_like_transformer_serves_alone_and_its_sparse_output_stays_sparse() -> None:
    import scipy.sparse

    from cmkit_runtime import transform as tf

    class sklearnDoubler:  # DRUM's test is the class's printed name holding "sklearn"
        def transform(self, data: pd.DataFrame) -> object:
            return data.to_numpy() * 2

    class sklearnSparse:
        def transform(self, data: pd.DataFrame) -> object:
            return scipy.sparse.csr_matrix(data.to_numpy())

    run = tf.artifact_transformer(sklearnDoubler())
    assert run is not None and run(pd.DataFrame({"a": [1, 2]}), None)[0].tolist() == [2, 4]
    assert tf.artifact_transformer(object()) is None
    sparse = tf.artifact_transformer(sklearnSparse())
    assert sparse is not None and tf.is_sparse(sparse(pd.DataFrame({"a": [1.0, 0.0]}), None))
