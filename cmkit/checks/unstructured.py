"""The checks of an unstructured model: its test input is a file, sent whole as one request body.

The reference gives a dataset "differently for unstructured models" (a model test's datasetId
is required only for the others; a holdout's datasetId "should be provided only for unstructured
models"): the file is not a table of rows but the body of a request, in whatever format the
model reads. So, as DataRobot runs them for an unstructured model:

- `longRunningService`: as for every model (`GET {prefix}/` answers 200).
- `errorCheck`: the file, as is, in one `POST {prefix}/predictUnstructured/` with the Content-Type
  its extension names (textual types with `charset=utf-8`). A valid answer is HTTP 200 whose
  bytes are what its Content-Type says: a textual type decodes in its charset (utf-8 when none
  is named), `application/json` parses. Any bytes are a valid prediction otherwise: the model
  decides what it answers. Without a file the check is skipped, not failed (the file is optional).
- The row-wise checks (`nullValueImputation`, `sideEffects`, `predictionVerificationCheck`) and
  the load checks are not run: there are no rows, columns or per-row predictions to compare.

DRUM's server and cmkit-runtime serve the same route, so the checks run against either.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.http import parse_options_header

from cmkit.checks.client import RawAnswer
from cmkit.checks.results import ERROR_CHECK, CheckResult, conclude
from cmkit.errors import InputError
from cmkit_runtime.formats import UNSTRUCTURED_ROUTES

if TYPE_CHECKING:
    from cmkit.checks.context import Context

ROUTE = UNSTRUCTURED_ROUTES[0]
MAX_INPUT_BYTES = 100 * 1024 * 1024  # a model test's file; a larger one is a load test, not a check
PREVIEW_CHARS = 200
NOT_APPLICABLE = "not run for unstructured models: their input is one request body, not rows"


@dataclass(frozen=True)
class RawDataset:
    """An unstructured model's test input: a file's bytes and the Content-Type they are sent with."""

    path: Path
    body: bytes
    content_type: str

    @property
    def rows(self) -> int:
        """One request (the report's dataset line counts requests for these models)."""
        return 1


def is_textual(mimetype: str) -> bool:
    """Textual as DRUM reads a body: `text/*` and `application/json` (cmkit_runtime/unstructured.py)."""
    return mimetype.startswith("text/") or mimetype == "application/json"


def content_type_of(path: Path) -> str:
    """The Content-Type a file is sent with: from its extension, utf-8 text for textual types."""
    mimetype = mimetypes.guess_type(path.name, strict=False)[0] or "application/octet-stream"
    return f"{mimetype}; charset=utf-8" if is_textual(mimetype) else mimetype


def load_raw(path: Path) -> RawDataset:
    """The file `path` as an unstructured request; InputError when it cannot be read or is too big."""
    try:
        if not path.is_file():
            raise InputError("the dataset is not a file", file=path, hint="pass --dataset FILE")
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(
                f"the dataset is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB",
                file=path,
                hint="an unstructured model's test file is one request body: pass a smaller one",
            )
        body = path.read_bytes()
    except OSError as exc:
        raise InputError(f"the dataset cannot be read: {exc.strerror or exc}", file=path) from exc
    return RawDataset(path, body, content_type_of(path))


def answer_problem(answer: RawAnswer) -> str | None:
    """Why an answer is not a valid unstructured prediction (one line), or None."""
    if answer.status == 0:
        return answer.body.decode("utf-8", "replace")
    if answer.status != 200:
        return f"HTTP {answer.status}: {answer_message(answer.body)}"
    if answer.content_type is None:
        return "the answer has no Content-Type" if answer.body else None
    mimetype, options = parse_options_header(answer.content_type)
    charset = options.get("charset") or "utf-8"
    if not is_textual(mimetype):
        return None
    try:
        text = answer.body.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        return f"the answer says {answer.content_type} but its bytes are not {charset}: {exc}"
    if mimetype == "application/json":
        try:
            json.loads(text)
        except ValueError as exc:
            return f"the answer says {answer.content_type} but is not JSON: {exc}"
    return None


def answer_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:PREVIEW_CHARS]
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return str(document["message"])[:PREVIEW_CHARS]
    return text.strip()[:PREVIEW_CHARS]


def error_check(ctx: Context, raw: RawDataset) -> CheckResult:
    """errorCheck for an unstructured model: the file in one request, the answer judged as above."""
    answer = ctx.client.post_raw(ROUTE, raw.body, raw.content_type)
    details: dict[str, object] = {
        "route": ROUTE,
        "requestBytes": len(raw.body),
        "requestContentType": raw.content_type,
        "status": answer.status,
        "answerBytes": len(answer.body),
        "answerContentType": answer.content_type,
        "answerPreview": answer.body[:PREVIEW_CHARS].decode("utf-8", "replace"),
    }
    problem = answer_problem(answer)
    if problem is not None:
        death = ctx.death_note()
        problem = f"{problem}; {death}" if death else problem
    shown = answer.content_type or "no Content-Type"
    success = f"{len(raw.body)} bytes ({raw.content_type}) answered with {len(answer.body)} bytes ({shown})"
    return conclude(ctx.level(ERROR_CHECK), problem, success, details)
