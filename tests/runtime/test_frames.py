"""The runtime's one-step DataFrame for wide numeric payloads gives the column-by-column frame.

Both paths must hand a model the same frame (dtypes, values, column order), whatever mix of
floats, integers, nulls, booleans and strings a request carries: the checks' verdicts depend
on it, and the fast path is the one every wide request takes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmkit_runtime import server
from cmkit_runtime.server import BadRequest, NotKept, build_frame, frame_by_column, parse_columnar, parse_request
from tests.support.property_tiers import tiers

VALUES = {
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "bigint": st.integers(min_value=2**63, max_value=2**70),
    "null": st.none(),
    "bool": st.booleans(),
    "text": st.text(max_size=3),
}


@st.composite
def payloads(draw: Any) -> dict[str, list[Any]]:
    rows = draw(st.integers(min_value=1, max_value=6))
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=8, unique=True))
    kinds = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=3))
    columns = {}
    for name in names:
        mix = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=2))
        columns[name] = draw(st.lists(st.one_of(*(VALUES[k] for k in mix)), min_size=rows, max_size=rows))
    return columns


def same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert list(fast.dtypes) == list(slow.dtypes)


# build_frame's ways to a numeric frame: a small request's blocks sorted in Python, the one-step
# NumPy path with its blocks placed by pandas (>= 3.0), the older pandas' isetitem / concat, and
# long data column by column. Each must give the column-by-column frame.
PATHS: dict[str, dict[str, Any]] = {
    "small": {},
    "long": {"LONG_ROWS": 1},
    "one-step": {"SMALL_REQUEST": 0},
    "without-blocks-api": {"SMALL_REQUEST": 0, "_from_blocks": None},
}


def take_path(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for setting, value in PATHS[name].items():
        monkeypatch.setattr(server, setting, value)
    return name


@pytest.fixture(params=sorted(PATHS))
def frame_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return take_path(request.param, monkeypatch)


@pytest.fixture(params=["small", "long"])
def columnar_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The columnar paths differ from the JSON body's only for long data (the rest is shared code)."""
    return take_path(request.param, monkeypatch)


@tiers(100)  # per path: the paths share the examples' budget
def test_build_frame_equals_the_column_by_column_frame(examples: int, frame_path: str) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(payloads())
    def check(columns: dict[str, list[Any]]) -> None:
        same(build_frame(columns), frame_by_column(columns))

    check()


def columnar(columns: dict[str, list[Any]]) -> bytes:
    """The columns in the runtime's columnar form (cmkit_runtime/wire.py)."""
    rows = len(next(iter(columns.values())))
    flat = [value for values in columns.values() for value in values]
    return json.dumps({"columns": list(columns), "rows": rows, "values": flat}).encode()


@tiers(100)  # per path: the paths share the examples' budget
def test_the_columnar_body_gives_the_frame_of_its_json_twin(examples: int, columnar_path: str) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(payloads())
    def check(columns: dict[str, list[Any]]) -> None:
        same(parse_columnar(columnar(columns)), parse_request(json.dumps({"X": columns}).encode()))

    check()


@tiers(100)  # per path: the paths share the examples' budget
def test_kept_values_with_nulls_give_the_frame_of_their_json_twin(examples: int, columnar_path: str) -> None:
    """wire.py's "keep", "nulls" and "from": the null check's requests on kept values."""

    @settings(max_examples=examples, deadline=None)
    @given(payloads(), st.data())
    def check(columns: dict[str, list[Any]], data: Any) -> None:
        names = list(columns)
        nulls = data.draw(st.lists(st.integers(0, len(names) - 1), unique=True, max_size=3))
        twin = {n: [None] * len(values) if i in nulls else values for i, (n, values) in enumerate(columns.items())}
        expected = parse_request(json.dumps({"X": twin}).encode())
        key = data.draw(st.text(min_size=1, max_size=8))
        whole = json.loads(columnar(columns)) | {"keep": key, "nulls": nulls}
        same(parse_columnar(json.dumps(whole).encode()), expected)
        for _ in range(2):  # the second time from what the first worked out
            same(parse_columnar(json.dumps({"from": key, "nulls": nulls}).encode()), expected)
        plain = parse_request(json.dumps({"X": columns}).encode())
        same(parse_columnar(json.dumps({"from": key}).encode()), plain)

    check()


def test_a_short_body_naming_values_not_kept_is_told_so() -> None:
    parse_columnar(b'{"columns": ["a"], "rows": 1, "values": [1.5], "keep": "one"}')
    with pytest.raises(NotKept, match="keeps no values under 'other'") as raised:
        parse_columnar(b'{"from": "other", "nulls": [0]}')
    assert raised.value.key == "other"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{", "not JSON"),
        (b'{"X": {"a": [1]}}', '"columns"'),
        (b'{"columns": [], "rows": 1, "values": []}', "non-empty list"),
        (b'{"columns": ["a", 1], "rows": 1, "values": [1, 2]}', "non-empty list of column names"),
        (b'{"columns": ["a", "a"], "rows": 1, "values": [1, 2]}', "twice"),
        (b'{"columns": ["a"], "rows": 0, "values": []}', "positive"),
        (b'{"columns": ["a"], "rows": true, "values": [1]}', "positive"),
        (b'{"columns": ["a", "b"], "rows": 2, "values": [1, 2, 3]}', "2 values for each of the 2 columns"),
        (b'{"columns": ["a"], "rows": 1, "values": [1], "keep": ""}', "a name of 1 to 128"),
        (b'{"columns": ["a"], "rows": 1, "values": [1], "nulls": [1]}', "positions, from 0 to 0"),
        (b'{"columns": ["a"], "rows": 1, "values": [1], "nulls": [false]}', "positions"),
        (b'{"columns": ["a", "b"], "rows": 1, "values": [1, 2], "nulls": [0, 0]}', "twice"),
        (b'{"from": 7}', "a name of 1 to 128"),
    ],
)
def test_a_malformed_columnar_body_is_refused_with_the_reason(body: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_columnar(body)


@pytest.mark.parametrize(
    "columns",
    [
        {"a": [1.0, 2.5], "b": [None, None], "c": [3.0, 4.0]},  # the null check's request
        {"a": [1, 2], "b": [1.5, None], "c": [None, None], "d": [7, 8]},
        {"a": [None], "b": [None]},
        {"a": [True, False], "b": [False, True]},
        {"a": [1, 2], "b": [3, 4]},
        {"a": [2**63], "b": [1]},
        {"a": [True, 1], "b": [1.0, 2.0]},
        {"a": ["x", None], "b": [1.0, 2.0]},
    ],
)
def test_build_frame_examples(columns: dict[str, list[Any]], frame_path: str) -> None:
    same(build_frame(columns), frame_by_column(columns))


def test_wide_numeric_request_is_one_block_with_the_null_column_as_drum_reads_it() -> None:
    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.normal(size=50).tolist() for i in range(1000)}
    columns["x500"] = [None] * 50
    frame = parse_request(json.dumps({"X": columns}).encode())
    assert list(frame.columns) == list(columns)
    # float64 NaN, as DRUM's pd.read_csv reads an empty CSV column (not pandas' object for [None, ...]).
    assert frame["x500"].dtype == np.float64 and frame["x500"].isna().all()
    assert frame["x499"].dtype == np.float64 and frame["x499"].tolist() == columns["x499"]
    # No block per column: every column, the null one too, is the request's one array.
    assert frame._mgr.nblocks == 1
    assert frame.columns.is_unique and frame.columns.equals(pd.Index(list(columns)))


def test_many_columns_of_each_numeric_kind_keep_their_order_and_dtypes(frame_path: str) -> None:
    rng = np.random.default_rng(1)
    columns: dict[str, list[Any]] = {}
    for i in range(120):
        kind = i % 4
        if kind == 0:
            columns[f"f{i}"] = rng.normal(size=5).tolist()
        elif kind == 1:
            columns[f"i{i}"] = rng.integers(-(2**40), 2**40, size=5).tolist()
        elif kind == 2:
            columns[f"n{i}"] = [None] * 5
        else:
            columns[f"m{i}"] = [1, None, 2.5, 3, None]
    same(build_frame(columns), frame_by_column(columns))
