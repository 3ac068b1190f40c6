"""The request bodies `POST $URL_PREFIX/predict_no_state/` reads, told apart by Content-Type.

- `application/json` (DataRobot's contract, and the default for any other type):
  `{"X": {"column": [value, ...], ...}}`.
- `application/vnd.cmkit.columnar+json`, this runtime's own:
  `{"columns": ["a", "b", ...], "rows": N, "values": [a1, ..., aN, b1, ..., bN, ...]}`: the
  names once and every value in one flat list, column after column (JSON null is a missing
  value). The same DataFrame comes out of both (tests/runtime/test_frames.py holds them to it).
  Since 0.4.0 a columnar body may also carry
  - `"nulls": [i, ...]`: the positions of columns made entirely null in this request;
  - `"keep": "name"`: the worker keeps this body's columns, rows and values (as sent, before
    "nulls") under that name, in place of whatever it kept before (one set per worker);
  and the short form `{"from": "name", "nulls": [i, ...]}` predicts on the values kept under
  that name with those columns made null. A worker that keeps nothing under the name answers
  409 `{"message": ..., "missing": "name"}`: the sender then sends the whole body with "keep".

Why a second form: parsing JSON costs a Python list per column per request, and cmkit's
nullValueImputation check sends one request per column. At 10,000 columns that was 8 of a
request's 12 ms of parsing; one flat list costs 1-2 ms. The check's requests differ only in the
column made null, so with "keep" each worker receives the values once and every other request
is a few bytes: no JSON, no 300 KB over the socket, for each of 10,000 requests.
`GET $URL_PREFIX/info/` lists the forms under "requestFormats" (and "columnarKeep": true), and
cmkit uses the columnar one only for that check's requests, so every other check still goes
through the JSON that DataRobot sends.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"
COLUMNAR = "application/vnd.cmkit.columnar+json"
REQUEST_FORMATS = (JSON, COLUMNAR)

KEEP, FROM, NULLS, MISSING = "keep", "from", "nulls", "missing"
MAX_KEY = 128  # a name for kept values: cmkit sends a 16-character digest
KEPT_STATUS = 409  # the short form's answer from a worker that does not have the values


def with_nulls(flat: list[Any], rows: int, positions: list[int]) -> list[Any]:
    """A copy of `flat` (column after column, `rows` values each) with those columns all null."""
    copy = list(flat)
    nulls = [None] * rows
    for position in positions:
        copy[position * rows : (position + 1) * rows] = nulls
    return copy
