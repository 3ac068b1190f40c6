"""Transform models: DRUM's `transform(data, model)` hook behind `POST /transform/`.

What DRUM 1.18 does, kept here so that a bundle answers the same under either server:

- In: the features as a CSV file under the form key `X` (multipart/form-data), or as the whole
  body (`Content-Type: text/csv`); optionally a target CSV under `y`. Read with pandas as DRUM
  reads a CSV. Neither: 422 naming both ways. Sparse data is a Matrix Market file: a file part
  whose name ends in `.mtx`, or a body sent as `text/mtx`; its column names, one a line, in the
  file part `X.colnames` (DRUM's sparse column file), else 0, 1, 2...; the hook gets a pandas
  frame of sparse columns (`DataFrame.sparse.from_spmatrix`).
- The hook: `transform(data, model)`, or `transform(data, model, y)` with the target frame (None
  without `y`). Without the hook, a scikit-learn transformer artifact's own `transform()`. It
  must return a DataFrame (a 2-D array is taken as one) with as many rows as it was given;
  returning a tuple (a transformed target) is refused, as DRUM refuses it.
- Out: multipart/form-data, as DRUM's encoder writes it: a part `X.format` (`csv`) and a file
  part `X.transformed` holding the frame as CSV (column names stripped, `\\r\\n` line ends, no
  final line end), then `y.format` and `y.transformed` (the target, unchanged) when `y` was sent.
  Parts are separated by a fresh random boundary, so answers compare part by part. A frame whose
  columns are all sparse is answered sparse, as DRUM does: `X.format` is `sparse`, `X.transformed`
  the matrix as SciPy's `mmwrite` writes it and `X.colnames` its column names, one a line.

SciPy is the model's dependency, not the runtime's: it is imported only when sparse data arrives
or leaves, and a missing SciPy is one line saying what to add to requirements.txt.

A hook that fails or breaks a rule is `BadTransform`: the server answers 500 with DRUM's
message, the one line the checks show.
"""

from __future__ import annotations

import importlib
import inspect
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from werkzeug.datastructures import FileStorage

from cmkit_runtime.formats import TRANSFORM_HOOK, TRANSFORM_ROUTES

ROUTES = TRANSFORM_ROUTES
FEATURES_KEY, TARGET_KEY = "X", "y"
FORMAT = "csv"
SPARSE_FORMAT = "sparse"  # DRUM's X.format of a Matrix Market answer
TRANSFORMED = ".transformed"
COLNAMES = ".colnames"  # DRUM's X.colnames: a sparse matrix's column names, one a line
MTX_SUFFIX = ".mtx"
MTX_MIMETYPE = "text/mtx"  # DRUM's mimetype of a Matrix Market body
NEEDS_SCIPY = (
    "sparse (.mtx) data needs SciPy, which the model's environment lacks: add scipy to the bundle's requirements.txt"
)
MIMETYPE = "multipart/form-data"
PART_TYPE = "application/octet-stream"
# DRUM's wording, so that a check reads the same line from either server.
ROWS_CHANGED = "Transformation resulted in different number of rows than original data"
NO_SAMPLES = "Samples should be provided as:   - a csv or mtx under `X` form-data param key.  - binary data"
TARGET_REFUSED = "Transformation of the target variable is not supported by DRUM."


class BadTransform(Exception):
    """The hook failed, or returned what DRUM refuses; `status` is the HTTP answer's."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TransformAnswer:
    body: bytes
    content_type: str


SPARSE: Any = pd.DataFrame.sparse  # pandas' sparse accessor (its stubs do not type it)
Transformer = Callable[[pd.DataFrame, pd.DataFrame | None], pd.DataFrame]


def hook_transformer(hook: Callable[..., Any], model: Any) -> Transformer:
    """DRUM's call of the hook: two arguments, or three (the target) when it takes three."""
    takes = len(inspect.signature(hook).parameters)
    if takes not in (2, 3):
        raise BadTransform(f"Transform hook must take 2 or 3 arguments; hook provided takes {takes}")

    def run(data: pd.DataFrame, target: pd.DataFrame | None) -> pd.DataFrame:
        out = hook(data, model, target) if takes == 3 else hook(data, model)
        if isinstance(out, tuple):
            raise BadTransform(TARGET_REFUSED)
        return _frame(out, TRANSFORM_HOOK)

    return run


def artifact_transformer(model: Any) -> Transformer | None:
    """A scikit-learn transformer's own transform() (DRUM's only hook-less transform), else None."""
    if "sklearn" not in str(type(model)) or not callable(getattr(model, TRANSFORM_HOOK, None)):
        return None

    def run(data: pd.DataFrame, _target: pd.DataFrame | None) -> pd.DataFrame:
        out = model.transform(data)
        if hasattr(out, "tocoo"):  # a SciPy sparse matrix (OneHotEncoder's default): answered sparse, as DRUM
            sparse: pd.DataFrame = SPARSE.from_spmatrix(out)
            return sparse
        frame: pd.DataFrame = pd.DataFrame(out)
        return frame

    return run


def _frame(value: Any, hook: str) -> pd.DataFrame:
    if isinstance(value, np.ndarray) and value.ndim == 2:
        value = pd.DataFrame(value)
    if not isinstance(value, pd.DataFrame):
        raise BadTransform(f"{hook} must return a dataframe, but received {type(value)}")
    return value


def read_csv(data: bytes) -> pd.DataFrame:
    """DRUM's read: a one-column CSV keeps its blank lines, as missing values."""
    try:
        frame = pd.read_csv(io.BytesIO(data))
        if frame.shape[1] == 1:
            frame = pd.read_csv(io.BytesIO(data), skip_blank_lines=False)
    except UnicodeDecodeError:
        raise BadTransform("Supplied CSV input file encoding must be UTF-8.", 422) from None
    except ValueError as exc:  # pandas' EmptyDataError and ParserError
        raise BadTransform(f"the CSV cannot be read: {exc}", 422) from None
    return frame


def _scipy_io() -> Any:
    """scipy.io, imported only for sparse data: SciPy is the model's dependency, not the runtime's."""
    try:
        return importlib.import_module("scipy.io")
    except ImportError:
        raise BadTransform(NEEDS_SCIPY) from None


def read_mtx(data: bytes, names: list[str] | None) -> pd.DataFrame:
    """DRUM's read of a Matrix Market file: a frame of sparse columns, named by `names` when given."""
    scipy_io = _scipy_io()
    try:
        matrix = scipy_io.mmread(io.BytesIO(data))
    except Exception as exc:  # SciPy raises ValueError, IndexError or others on a broken file
        raise BadTransform(f"the .mtx cannot be read: {exc}", 422) from None
    if not hasattr(matrix, "tocoo"):  # the dense "array" variant of the format
        matrix = importlib.import_module("scipy.sparse").coo_matrix(matrix)
    if names is not None and len(names) != matrix.shape[1]:
        raise BadTransform(f"X{COLNAMES} names {len(names)} columns, the matrix has {matrix.shape[1]}", 422)
    frame: pd.DataFrame = SPARSE.from_spmatrix(matrix, columns=names)
    return frame


def column_names(data: bytes) -> list[str] | None:
    """DRUM's sparse column file: one name a line, each stripped; empty: none given."""
    if not data:
        return None
    try:
        return [line.strip().decode("utf-8") for line in io.BytesIO(data).readlines()]
    except UnicodeDecodeError:
        raise BadTransform(f"X{COLNAMES} must be UTF-8 text, one column name a line", 422) from None


def _read(data: bytes, sparse: bool, names: list[str] | None = None) -> pd.DataFrame:
    return read_mtx(data, names) if sparse else read_csv(data)


def _is_mtx(part: FileStorage) -> bool:
    """DRUM tells a file's format by its name: `.mtx` is Matrix Market, anything else a CSV."""
    return (part.filename or "").lower().endswith(MTX_SUFFIX)


def request_frames(
    files: Mapping[str, FileStorage], body: bytes, mimetype: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The features (and the target, if sent) of a /transform/ request, as DRUM finds them."""
    features = files.get(FEATURES_KEY)
    if features is not None:
        data, sparse = features.stream.read(), _is_mtx(features)
    elif body:
        data, sparse = body, mimetype == MTX_MIMETYPE
    else:
        raise BadTransform(NO_SAMPLES, 422)
    names_part = files.get(f"{FEATURES_KEY}{COLNAMES}")
    names = column_names(names_part.stream.read()) if names_part is not None else None
    target_part = files.get(TARGET_KEY)
    target = _read(target_part.stream.read(), _is_mtx(target_part)) if target_part is not None else None
    return _read(data, sparse, names), target


def transformed(transformer: Transformer, data: pd.DataFrame, target: pd.DataFrame | None) -> TransformAnswer:
    """Run the transformer under DRUM's rules and write DRUM's multipart answer."""
    out = transformer(data, target)
    if out.shape[0] != data.shape[0]:
        raise BadTransform(ROWS_CHANGED)
    fields = features_fields(out)
    if target is not None:
        fields += csv_fields(TARGET_KEY, csv_payload(target))
    boundary = uuid.uuid4().hex
    return TransformAnswer(multipart(fields, boundary), f"{MIMETYPE}; boundary={boundary}")


def is_sparse(frame: pd.DataFrame) -> bool:
    """DRUM's test: pandas' `.sparse` accessor exists only when every column is sparse."""
    return hasattr(frame, "sparse")


Field = tuple[str, bytes, bool]  # a multipart answer's field: name, value, sent as a file


def csv_fields(key: str, payload: bytes) -> list[Field]:
    """`<key>.format` (csv) and `<key>.transformed` (the CSV), as DRUM answers a frame."""
    return [(f"{key}.format", FORMAT.encode(), False), (f"{key}{TRANSFORMED}", payload, True)]


def features_fields(out: pd.DataFrame) -> list[Field]:
    """The answer's X fields, in DRUM's order: a CSV, or a sparse frame's matrix and names."""
    if not is_sparse(out):
        return csv_fields(FEATURES_KEY, csv_payload(out))
    scipy_io = _scipy_io()
    names = serial_names(out)
    sink = io.BytesIO()
    scipy_io.mmwrite(sink, cast(Any, out).sparse.to_coo())
    return [
        (f"{FEATURES_KEY}.format", SPARSE_FORMAT.encode(), False),
        (f"{FEATURES_KEY}{TRANSFORMED}", sink.getvalue(), True),
        (f"{FEATURES_KEY}{COLNAMES}", "\n".join(names).encode("utf-8"), True),
    ]


def serial_names(frame: pd.DataFrame) -> list[str]:
    """DRUM's column names on the wire: stripped, newlines escaped; none may be left empty."""
    names = [str(name).strip().replace("\n", "\\n") for name in frame.columns]
    if any(not name for name in names):
        raise BadTransform(
            f"Column name serialization check failed, deserializing column names resulted in "
            f"{sum(1 for n in names if n)}, expected {frame.shape[1]}\n"
            "Ensure there are no column names made up entirely of whitespace"
        )
    return names


def csv_payload(frame: pd.DataFrame) -> bytes:
    """DRUM's CSV of a frame: names stripped, newlines in them escaped, \\r\\n line ends, no final one."""
    text: str = frame.set_axis(serial_names(frame), axis=1).to_csv(index=False, lineterminator="\r\n")
    return text[:-2].encode("utf-8")


def multipart(fields: list[Field], boundary: str) -> bytes:
    """The bytes DRUM's encoder (requests-toolbelt's) writes for these fields, files named as their field."""
    out = io.BytesIO()
    for name, value, is_file in fields:
        if is_file:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'.encode())
            out.write(f"Content-Type: {PART_TYPE}\r\n\r\n".encode())
        else:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()
