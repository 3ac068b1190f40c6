"""The test dataset: read once with pandas, turned into `predict_no_state` request bodies; and
the verification dataset's column of expected predictions (predictionVerificationCheck).

Wide datasets make the null-value check send one body per column, each nearly the whole
dataset: re-encoding it for every column cost more than the model (1.3 s of JSON per request
at 1,000 x 1,000). So every column is encoded once, as its `"name":[...]` bytes, and a body is
those pieces joined; the body with a column made null swaps that one piece for a run of nulls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from cmkit.checks.datasetfile import CsvShape, check_csv, read_shape
from cmkit.checks.protocols import KeptTwin, Payload, encode_payload
from cmkit.errors import InputError


@dataclass
class EncodedRows:
    """Some rows of the dataset (all, or a sample) as one JSON piece per column."""

    rows: int
    names: list[str]
    pieces: list[bytes]  # b'"name":[v,...]', in column order
    _position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._position = {name: i for i, name in enumerate(self.names)}

    @cached_property
    def _nulls(self) -> bytes:
        return b"[" + b",".join([b"null"] * self.rows) + b"]"

    def body(self) -> bytes:
        return _body(self.pieces)

    @cached_property
    def _joined(self) -> tuple[memoryview, list[int]]:
        """body() once, and where each column's piece starts in it."""
        body = self.body()
        starts, at = [], len(_OPEN)
        for piece in self.pieces:
            starts.append(at)
            at += len(piece) + 1  # and its comma
        return memoryview(body), starts

    def with_null_column(self, name: str) -> Payload:
        """The body with `name` entirely null; its columnar twins are built only if the server takes them."""
        position = self._position[name]
        body, starts = self._joined
        start = starts[position]
        # Two slices of the body around the column, not a join of 10,000 pieces per request.
        end = start + len(self.pieces[position])
        json_body = b"".join((body[:start], _key(name), self._nulls, body[end:]))
        kept = KeptTwin(partial(self._short, position), partial(self._keeping, position))
        return Payload(json_body, columnar=partial(self.columnar_with_null_column, name), kept=kept)

    @cached_property
    def _values(self) -> list[bytes]:
        """Each column's values alone: its piece without the key and the brackets."""
        return [piece[len(_key(name)) + 1 : -1] for name, piece in zip(self.names, self.pieces, strict=True)]

    @cached_property
    def _columnar_head(self) -> bytes:
        return b'{"columns":' + orjson.dumps(self.names) + b',"rows":' + str(self.rows).encode() + b',"values":['

    @cached_property
    def _all_values(self) -> bytes:
        """The columnar body of these rows without nulls, up to its closing brace."""
        return self._columnar_head + b",".join(self._values) + b"]"

    @cached_property
    def kept_key(self) -> str:
        """The name the server keeps these values under (wire.py's "keep"): their digest."""
        return hashlib.blake2b(self._all_values, digest_size=8).hexdigest()

    def _keeping(self, position: int) -> bytes:
        """Every value, kept by the server, with the column at `position` made null."""
        keep = b',"keep":"' + self.kept_key.encode() + b'"'
        return self._all_values + keep + b',"nulls":[' + str(position).encode() + b"]}"

    def _short(self, position: int) -> bytes:
        """The kept values with the column at `position` made null: a few bytes."""
        return b'{"from":"' + self.kept_key.encode() + b'","nulls":[' + str(position).encode() + b"]}"

    def columnar_with_null_column(self, name: str) -> bytes:
        """cmkit-runtime's columnar body (cmkit_runtime/wire.py) with `name` entirely null."""
        values = list(self._values)
        values[self._position[name]] = self._nulls[1:-1]
        return self._columnar_head + b",".join(values) + b"]}"


@dataclass
class Dataset:
    """Feature columns (the target removed), encoded for requests on first use."""

    path: Path
    features: pd.DataFrame
    target_name: str | None
    target: pd.Series | None = None  # the target column, for scoring (feature impact)
    _selections: dict[tuple[int, ...] | None, EncodedRows] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(self.features)

    @cached_property
    def names(self) -> list[str]:
        return [str(name) for name in self.features.columns]

    @cached_property
    def _other_positions(self) -> list[int]:
        """Positions of the columns that are not numbers (strings, dates): converted one by one."""
        return [i for i, dtype in enumerate(self.features.dtypes) if dtype.kind not in "biuf"]

    @cached_property
    def columns(self) -> dict[str, list[Any]]:
        """The columns as JSON-ready Python lists (NaN as None); the checks themselves use bytes."""
        return {str(name): _json_column(self.features[name]) for name in self.features.columns}

    def encoded(self, rows: Sequence[int] | None = None) -> EncodedRows:
        """Every row (None) or the rows at these positions, encoded once and kept."""
        key = None if rows is None else tuple(rows)
        if key not in self._selections:
            frame = self.features if key is None else self.features.iloc[list(key)]
            pieces = [_key(str(label)) + _encode_column(series) for label, series in frame.items()]
            self._selections[key] = EncodedRows(len(frame), self.names, pieces)
        return self._selections[key]

    def payload(self, columns: dict[str, list[Any]] | None = None) -> Payload:
        return Payload(self.encoded().body()) if columns is None else encode_payload(columns)

    def with_null_column(self, name: str, rows: Sequence[int] | None = None) -> Payload:
        return self.encoded(rows).with_null_column(name)

    def row_payloads(self, indices: Sequence[int]) -> list[Payload]:
        """One single-row body per index: sideEffects' requests, built in one pass over the rows."""
        frame = self.features.iloc[list(indices)]
        # One conversion of the block to Python values (NaN stays a float, which orjson writes
        # as null), then the few columns that are not numbers made JSON-ready one by one.
        matrix = frame.to_numpy(dtype=object, copy=bool(self._other_positions))  # written into below
        for position in self._other_positions:
            matrix[:, position] = _json_column(frame.iloc[:, position])
        names = self.names
        # zip(row) gives 1-tuples, which orjson writes as one-value arrays.
        return [Payload(orjson.dumps({"X": dict(zip(names, zip(row), strict=True))})) for row in matrix.tolist()]

    def row_payload(self, index: int) -> Payload:
        return self.row_payloads([index])[0]


_OPEN = b'{"X":{'


def _body(pieces: list[bytes]) -> bytes:
    return _OPEN + b",".join(pieces) + b"}}"


def _key(name: str) -> bytes:
    return orjson.dumps(name) + b":"


def _numeric(series: pd.Series) -> bool:
    return series.dtype.kind in "biuf"


def _encode_column(series: pd.Series) -> bytes:
    if not _numeric(series):
        return orjson.dumps(_json_column(series))
    values = np.ascontiguousarray(series.to_numpy())
    # orjson writes NaN as null: a missing value, as the JSON protocol has it.
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)


def _json_column(series: pd.Series) -> list[Any]:
    """Values as JSON types: NaN/NaT -> None, datetimes -> ISO strings, numpy scalars -> Python."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.isoformat() for v in series]
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if hasattr(v, "item") else v for v in values]


def _refuse_infinities(features: pd.DataFrame, path: Path) -> None:
    """pandas reads 'inf' as a float that no JSON request body can carry: say where it is."""
    numeric = features.select_dtypes(include="float")
    if numeric.empty:
        return
    infinite = np.isinf(numeric.to_numpy())
    if not infinite.any():
        return
    row, column = (int(i) for i in np.argwhere(infinite)[0])
    raise InputError(
        f"column {str(numeric.columns[column])!r}, data row {row + 1}: '{numeric.iat[row, column]}' "
        "is not a finite number and cannot be sent as JSON",
        file=path,
        hint="leave the value empty (null) or write a finite number",
    )


_INT_RANGE = (-(2**63), 2**64 - 1)  # what pandas keeps as int64/uint64 and JSON encoders write


def _refuse_big_integers(features: pd.DataFrame, path: Path) -> None:
    """pandas keeps an integer past 64 bits as a Python int in an object column, which the
    request encoder (orjson) refuses: name the cell instead of failing in the middle of a check."""
    low, high = _INT_RANGE
    for name, series in features.items():
        if series.dtype != object:
            continue
        for row, value in enumerate(series.tolist()):
            if isinstance(value, int) and not low <= value <= high:
                raise InputError(
                    f"column {str(name)!r}, data row {row + 1}: {value} is an integer beyond 64 bits, "
                    "which a JSON request body cannot carry as a number",
                    file=path,
                    hint="write it as a decimal (for example 1e20) or as text in a column of text",
                )


def load_dataset(path: str | Path, target_name: str | None = None, shape: CsvShape | None = None) -> Dataset:
    """Read a CSV test dataset; the target column, if named, must exist and is removed.

    `shape`: what `check_csv` found when the caller already checked the file (before a build).
    """
    csv_path = Path(path)
    if shape is None:
        check_csv(csv_path, target_name)
    try:
        frame = pd.read_csv(csv_path, encoding="utf-8-sig", low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"unreadable CSV: {str(exc).splitlines()[0]}", file=csv_path) from exc
    if frame.empty:
        raise InputError("the dataset has no rows", file=csv_path, hint="add data rows under the header")
    # copy(): one block per dtype (read_csv leaves one per column), so taking sample rows is
    # one take per dtype, not one per column.
    features = (frame.drop(columns=[target_name]) if target_name else frame).copy()
    _refuse_infinities(features, csv_path)
    _refuse_big_integers(features, csv_path)
    target = frame[target_name] if target_name else None
    return Dataset(path=csv_path, features=features, target_name=target_name, target=target)


@dataclass
class ExpectedPredictions:
    """predictionVerificationCheck's column of expected predictions, one per row of the test dataset."""

    path: Path
    column: str
    values: list[str | None]  # as written in the CSV; None where empty


def load_expected(path: str | Path, column: str | None) -> ExpectedPredictions:
    """The expected-predictions column of a CSV; InputError naming the file when unusable."""
    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputError("verification dataset not found", file=csv_path, hint="pass --verification-dataset CSV")
    if not column:
        raise InputError(
            "no predictions column for the verification dataset", file=csv_path, hint="pass --predictions-column NAME"
        )
    header = read_shape(csv_path).header
    if column not in header:
        raise InputError(
            f"column '{column}' is not in the verification dataset (columns: {', '.join(header[:8])})",
            file=csv_path,
            line=1,
            hint="fix --predictions-column",
        )
    try:
        frame = pd.read_csv(csv_path, usecols=[column], dtype=str, encoding="utf-8-sig", keep_default_na=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"unreadable CSV: {str(exc).splitlines()[0]}", file=csv_path) from exc
    values = [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in frame[column]]
    return ExpectedPredictions(csv_path, column, values)
