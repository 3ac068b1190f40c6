"""The checks of a transform model: the dataset's rows in, the transformed rows out, row for row.

A transform (DRUM's `transform(data, model)`, on `POST {prefix}/transform/`) predicts nothing:
its answer is a frame. So, as DRUM serves it:

- `longRunningService`: as for every model.
- `errorCheck`: the dataset's feature columns as one CSV file under the form key `X`
  (multipart/form-data, as DataRobot and DRUM's own tools send it). A valid answer is HTTP 200,
  multipart/form-data with an `X.transformed` part whose CSV has exactly one row per row sent.
- `nullValueImputation`: the same request with each column made entirely null, in turn: the
  transform must still answer a frame of as many rows (DataRobot imputes nothing before it).
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
from typing import TYPE_CHECKING

import pandas as pd

from cmkit.checks.client import RawAnswer
from cmkit.checks.results import ERROR_CHECK, NULL_VALUE_IMPUTATION, CheckResult, conclude
from cmkit.checks.unstructured import answer_message
from cmkit_runtime.transform import FEATURES_KEY, ROUTES, TRANSFORMED

if TYPE_CHECKING:
    from cmkit.checks.context import Context
    from cmkit.checks.dataset import Dataset

ROUTE = ROUTES[0]
PREVIEW_CHARS = 200
NOT_APPLICABLE = "not run for transform models: their answer is a frame, not predictions to compare"
SHOWN_COLUMNS = 5  # nullValueImputation's message names this many failing columns


@dataclass(frozen=True)
class Transformed:
    """A /transform/ answer read: the frame, or why it is not a valid one (one line)."""

    frame: pd.DataFrame | None
    problem: str | None
    preview: str = ""


def request_body(features: pd.DataFrame, filename: str) -> tuple[bytes, str]:
    """The features as a CSV file under `X`, in a multipart/form-data body, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{FEATURES_KEY}"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = head.encode() + features.to_csv(index=False).encode("utf-8") + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


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
    if fields.get(f"{FEATURES_KEY}.format", b"csv") != b"csv":
        return Transformed(None, f"the answer's {key} is not a CSV ({fields[f'{FEATURES_KEY}.format']!r})", preview)
    try:
        frame = pd.read_csv(io.BytesIO(payload)) if payload.strip() else pd.DataFrame()
    except (ValueError, UnicodeDecodeError) as exc:
        return Transformed(None, f"the answer's {key} is not a readable CSV: {exc}", preview)
    if len(frame) != rows:
        kept = f"the transform returned {len(frame)} rows for {rows}: it must keep every row"
        return Transformed(None, kept, preview)
    return Transformed(frame, None, preview)


def _send(ctx: Context, features: pd.DataFrame, dataset: Dataset) -> tuple[RawAnswer, Transformed]:
    body, content_type = request_body(features, dataset.path.name)
    answer = ctx.client.post_raw(ROUTE, body, content_type)
    return answer, read_answer(answer, len(features))


def error_check(ctx: Context, dataset: Dataset) -> CheckResult:
    """errorCheck for a transform: the dataset in one request, the answer's frame row for row."""
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
    if read.frame is not None:
        details["columns"] = [str(name) for name in read.frame.columns]
        success = f"{dataset.rows} rows transformed into {read.frame.shape[1]} columns"
    return conclude(ctx.level(ERROR_CHECK), problem, success, details)


def null_value_imputation(ctx: Context, dataset: Dataset) -> CheckResult:
    """Each column made entirely null in turn: the transform must still answer every row."""
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
