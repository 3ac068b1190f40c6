"""Transform models: DRUM's `transform(data, model)` hook behind `POST /transform/`.

What DRUM 1.18 does, kept here so that a bundle answers the same under either server:

- In: the features as a CSV file under the form key `X` (multipart/form-data), or as the whole
  body (`Content-Type: text/csv`); optionally a target CSV under `y`. Read with pandas as DRUM
  reads a CSV. Neither: 422 naming both ways.
- The hook: `transform(data, model)`, or `transform(data, model, y)` with the target frame (None
  without `y`). Without the hook, a scikit-learn transformer artifact's own `transform()`. It
  must return a DataFrame (a 2-D array is taken as one) with as many rows as it was given;
  returning a tuple (a transformed target) is refused, as DRUM refuses it.
- Out: multipart/form-data, as DRUM's encoder writes it: a part `X.format` (`csv`) and a file
  part `X.transformed` holding the frame as CSV (column names stripped, `\\r\\n` line ends, no
  final line end), then `y.format` and `y.transformed` (the target, unchanged) when `y` was sent.
  Parts are separated by a fresh random boundary, so answers compare part by part.

A hook that fails or breaks a rule is `BadTransform`: the server answers 500 with DRUM's
message, the one line the checks show. Sparse (`.mtx`) inputs and outputs are not served.
"""

from __future__ import annotations

import inspect
import io
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from werkzeug.datastructures import FileStorage

from cmkit_runtime.formats import TRANSFORM_HOOK, TRANSFORM_ROUTES

ROUTES = TRANSFORM_ROUTES
FEATURES_KEY, TARGET_KEY = "X", "y"
FORMAT = "csv"
TRANSFORMED = ".transformed"
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
        if hasattr(out, "toarray"):  # a scipy sparse matrix: served dense (sparse answers are not served)
            out = out.toarray()
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


def request_frames(
    files: Mapping[str, FileStorage], body: bytes, mimetype: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The features (and the target, if sent) of a /transform/ request, as DRUM finds them."""
    features = files.get(FEATURES_KEY)
    if features is not None:
        data = features.stream.read()
    elif body:
        data = body
    else:
        raise BadTransform(NO_SAMPLES, 422)
    for part in (features, files.get(TARGET_KEY)):
        if part is not None and (part.filename or "").lower().endswith(".mtx"):
            raise BadTransform("sparse (.mtx) input is not served by cmkit-runtime: send a CSV", 422)
    if features is None and mimetype.endswith("mtx"):
        raise BadTransform("sparse (.mtx) input is not served by cmkit-runtime: send a CSV", 422)
    target_part = files.get(TARGET_KEY)
    target = read_csv(target_part.stream.read()) if target_part is not None else None
    return read_csv(data), target


def transformed(transformer: Transformer, data: pd.DataFrame, target: pd.DataFrame | None) -> TransformAnswer:
    """Run the transformer under DRUM's rules and write DRUM's multipart answer."""
    out = transformer(data, target)
    if out.shape[0] != data.shape[0]:
        raise BadTransform(ROWS_CHANGED)
    parts = [(FEATURES_KEY, csv_payload(out))]
    if target is not None:
        parts.append((TARGET_KEY, csv_payload(target)))
    boundary = uuid.uuid4().hex
    return TransformAnswer(multipart(parts, boundary), f"{MIMETYPE}; boundary={boundary}")


def csv_payload(frame: pd.DataFrame) -> bytes:
    """DRUM's CSV of a frame: names stripped, newlines in them escaped, \\r\\n line ends, no final one."""
    names = [str(name).strip().replace("\n", "\\n") for name in frame.columns]
    if any(not name for name in names):
        raise BadTransform(
            f"Column name serialization check failed, deserializing column names resulted in "
            f"{sum(1 for n in names if n)}, expected {frame.shape[1]}\n"
            "Ensure there are no column names made up entirely of whitespace"
        )
    text: str = frame.set_axis(names, axis=1).to_csv(index=False, lineterminator="\r\n")
    return text[:-2].encode("utf-8")


def multipart(parts: list[tuple[str, bytes]], boundary: str) -> bytes:
    """The bytes DRUM's encoder writes for its `<key>.format` and `<key>.transformed` fields."""
    out = io.BytesIO()
    for key, payload in parts:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}.format"\r\n\r\n{FORMAT}\r\n'.encode())
        name = f"{key}{TRANSFORMED}"
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'.encode())
        out.write(f"Content-Type: {PART_TYPE}\r\n\r\n".encode())
        out.write(payload + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()
