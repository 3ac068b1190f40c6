"""The checks of a transform model: the dataset's rows in, the transformed rows out, row for row.

A transform (DRUM's `transform(data, model)`, on `POST {prefix}/transform/`) predicts nothing:
its answer is a frame. So, as DRUM serves it:

- `longRunningService`: as for every model.
- `errorCheck`: the dataset's feature columns as one CSV file under the form key `X`
  (multipart/form-data, as DataRobot and DRUM's own tools send it); a sparse dataset (`.mtx`,
  checks/sparse.py) as that file under `X` and its column file under `X.colnames`. A valid
  answer is HTTP 200, multipart/form-data with an `X.transformed` part with exactly one row per
  row sent: a CSV (`X.format` csv), or a Matrix Market file whose size line says so (sparse).
- `nullValueImputation`: the same request with each column made entirely null, in turn: the
  transform must still answer a frame of as many rows (DataRobot imputes nothing before it).
  Not run on sparse data: a missing entry of a sparse matrix is a zero, not a null.
- The checks that compare predictions (`sideEffects`, `predictionVerificationCheck`) and the
  load checks are not run: a frame has no per-row prediction to compare.

DRUM's server and cmkit-runtime serve the same route and answer, so the checks run against either.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from cmkit.checks.client import RawAnswer
from cmkit.checks.results import ERROR_CHECK, NULL_VALUE_IMPUTATION, SKIPPED, CheckResult, conclude
from cmkit.checks.sparse import SparseDataset, mtx_shape, read_matrix
from cmkit.checks.unstructured import answer_message
from cmkit_runtime.transform import COLNAMES, FEATURES_KEY, FORMAT, ROUTES, SPARSE_FORMAT, TRANSFORMED

if TYPE_CHECKING:
    from cmkit.checks.context import Context
    from cmkit.checks.dataset import Dataset

ROUTE = ROUTES[0]
PREVIEW_CHARS = 200
NOT_APPLICABLE = "not run for transform models: their answer is a frame, not predictions to compare"
SHOWN_COLUMNS = 5  # nullValueImputation's message names this many failing columns
SPARSE_NO_NULLS = "not run on sparse (.mtx) data: a missing entry of a sparse matrix is a zero, not a null"


@dataclass(frozen=True)
class Transformed:
    """A /transform/ answer read: the frame, or why it is not a valid one (one line)."""

    frame: pd.DataFrame | None  # a CSV answer's frame (None for a sparse one: see `fields`)
    problem: str | None
    preview: str = ""
    columns: list[str] | None = None
    fields: dict[str, bytes] | None = None  # the answer's form fields, when it had them


FilePart = tuple[str, str, str, bytes]  # form key, file name, Content-Type, bytes


def form_body(parts: list[FilePart]) -> tuple[bytes, str]:
    """Files in a multipart/form-data body, and its Content-Type."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for key, filename, content_type, data in parts:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{filename}"\r\n'.encode())
        out.write(f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def request_body(features: pd.DataFrame, filename: str) -> tuple[bytes, str]:
    """The features as a CSV file under `X`, in a multipart/form-data body, and its Content-Type."""
    return form_body([(FEATURES_KEY, filename, "text/csv", features.to_csv(index=False).encode("utf-8"))])


def sparse_body(dataset: SparseDataset) -> tuple[bytes, str]:
    """The .mtx file under `X` and its column file under `X.colnames`, as DRUM takes them."""
    parts = [(FEATURES_KEY, dataset.path.name, "text/mtx", dataset.body)]
    if dataset.names_body is not None:
        parts.append((f"{FEATURES_KEY}{COLNAMES}", f"{FEATURES_KEY}{COLNAMES}", "text/plain", dataset.names_body))
    return form_body(parts)


def _parts(answer: RawAnswer) -> dict[str, bytes] | str:
    """The answer's form fields by name, or why it is not multipart/form-data."""
    content_type = answer.content_type or ""
    if not content_type.startswith("multipart/"):
        return f"the answer is {content_type or 'without a Content-Type'}, not multipart/form-data"
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + answer.body)
    if not message.is_multipart():
        return "the multipart answer cannot be read (no parts under its boundary)"
    fields: dict[str, bytes] = {}
    for part in message.get_payload():
        if isinstance(part, Message):
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
    return fields


def read_answer(answer: RawAnswer, rows: int) -> Transformed:
    """errorCheck's rule for one /transform/ answer to a request of `rows` rows."""
    if answer.status == 0:
        return Transformed(None, answer.body.decode("utf-8", "replace"))
    if answer.status != 200:
        return Transformed(None, f"HTTP {answer.status}: {answer_message(answer.body)}")
    fields = _parts(answer)
    if isinstance(fields, str):
        return Transformed(None, fields)
    key = f"{FEATURES_KEY}{TRANSFORMED}"
    if key not in fields:
        return Transformed(None, f"the answer has no {key} part (parts: {', '.join(sorted(fields)) or 'none'})")
    payload = fields[key]
    preview = payload[:PREVIEW_CHARS].decode("utf-8", "replace")
    answer_format = fields.get(f"{FEATURES_KEY}.format", FORMAT.encode())
    if answer_format == SPARSE_FORMAT.encode():
        return _read_sparse(fields, payload, rows, preview)
    if answer_format != FORMAT.encode():
        return Transformed(None, f"the answer's {key} is neither csv nor sparse ({answer_format!r})", preview)
    try:
        frame = pd.read_csv(io.BytesIO(payload)) if payload.strip() else pd.DataFrame()
    except (ValueError, UnicodeDecodeError) as exc:
        return Transformed(None, f"the answer's {key} is not a readable CSV: {exc}", preview)
    if len(frame) != rows:
        return Transformed(None, _rows_problem(len(frame), rows), preview)
    return Transformed(frame, None, preview, [str(name) for name in frame.columns], fields)


def _rows_problem(got: int, sent: int) -> str:
    return f"the transform returned {got} rows for {sent}: it must keep every row"


def _read_sparse(fields: dict[str, bytes], payload: bytes, rows: int, preview: str) -> Transformed:
    """A sparse answer: the Matrix Market size line gives the rows, X.colnames the columns."""
    shape = mtx_shape(payload)
    if isinstance(shape, str):
        return Transformed(None, f"the answer's sparse {FEATURES_KEY}{TRANSFORMED}: {shape}", preview)
    got, width = shape
    if got != rows:
        return Transformed(None, _rows_problem(got, rows), preview)
    names = fields.get(f"{FEATURES_KEY}{COLNAMES}")
    columns = names.decode("utf-8", "replace").split("\n") if names else [str(i) for i in range(width)]
    return Transformed(None, None, preview, columns, fields)


def answer_frame(read: Transformed) -> pd.DataFrame:
    """A valid answer's whole frame: the CSV's, or the sparse matrix read with SciPy (dense, named)."""
    if read.frame is not None:
        return read.frame
    assert read.fields is not None, "only a valid answer has a frame"
    frame = read_matrix(read.fields[f"{FEATURES_KEY}{TRANSFORMED}"], read.columns)
    dense: pd.DataFrame = cast(Any, frame).sparse.to_dense()
    return dense


def _send(ctx: Context, features: pd.DataFrame, dataset: Dataset) -> tuple[RawAnswer, Transformed]:
    body, content_type = request_body(features, dataset.path.name)
    answer = ctx.client.post_raw(ROUTE, body, content_type)
    return answer, read_answer(answer, len(features))


def _send_sparse(ctx: Context, dataset: SparseDataset) -> tuple[RawAnswer, Transformed]:
    body, content_type = sparse_body(dataset)
    answer = ctx.client.post_raw(ROUTE, body, content_type)
    return answer, read_answer(answer, dataset.rows)


def error_check(ctx: Context, dataset: Dataset | SparseDataset) -> CheckResult:
    """errorCheck for a transform: the dataset in one request, the answer's frame row for row."""
    if isinstance(dataset, SparseDataset):
        answer, read = _send_sparse(ctx, dataset)
    else:
        answer, read = _send(ctx, dataset.features, dataset)
    details: dict[str, object] = {
        "route": ROUTE,
        "status": answer.status,
        "answerContentType": answer.content_type,
        "answerPreview": read.preview,
    }
    problem = read.problem
    if problem is not None:
        death = ctx.death_note()
        problem = f"{problem}; {death}" if death else problem
    success = ""
    if read.columns is not None:
        details["columns"] = read.columns
        sparse = " (sparse)" if read.frame is None else ""
        success = f"{dataset.rows} rows transformed into {len(read.columns)} columns{sparse}"
    return conclude(ctx.level(ERROR_CHECK), problem, success, details)


def null_value_imputation(ctx: Context, dataset: Dataset | SparseDataset) -> CheckResult:
    """Each column made entirely null in turn: the transform must still answer every row."""
    if isinstance(dataset, SparseDataset):
        return CheckResult(SKIPPED, SPARSE_NO_NULLS)
    failing: dict[str, str] = {}
    for name in dataset.features.columns:
        ctx.raise_if_canceled()
        features = dataset.features.copy()
        features[name] = None
        problem = _send(ctx, features, dataset)[1].problem
        if problem is not None:
            failing[str(name)] = problem
    total = dataset.features.shape[1]
    details: dict[str, object] = {"columns": total, "failingColumns": failing}
    problem = None
    if failing:
        shown = "; ".join(f"{name}: {reason}" for name, reason in list(failing.items())[:SHOWN_COLUMNS])
        more = f" (and {len(failing) - SHOWN_COLUMNS} more)" if len(failing) > SHOWN_COLUMNS else ""
        problem = f"{len(failing)} of {total} columns fail when entirely null: {shown}{more}"
    return conclude(ctx.level(NULL_VALUE_IMPUTATION), problem, f"all {total} columns pass when null", details)
