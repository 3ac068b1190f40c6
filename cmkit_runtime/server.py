"""The model server's WSGI app: one copy per gunicorn worker (`cmkit-runtime serve` starts them).

Routes, mounted under URL_PREFIX (normalised to "" or "/a/b"):

- `GET  $URL_PREFIX/`: 200 with an empty body once the model is loaded, 503 while it loads.
- `POST $URL_PREFIX/predict_no_state/`: body `{"X": {"column": [value, ...], ...}}` (JSON null is
  a missing value). Answers `{"predictions": [...]}` (see outputs.py). 422 for a malformed
  request, 500 when the model raises or returns something unusable, each with `{"message": ...}`.
  With `Content-Type: application/vnd.cmkit.columnar+json` the body is the runtime's own columnar
  form instead (wire.py), which cmkit's null-value check uses; a short columnar body naming
  values this worker does not keep gets 409.
- `GET  $URL_PREFIX/info/`: the runtime's version, the request formats, the model format and
  hooks found, the target. `GET $URL_PREFIX/capabilities/`: the prediction routes and bodies.
- Unstructured models (unstructured.py) are served on `POST $URL_PREFIX/predictUnstructured/`
  (and DRUM's other name, `/predictionsUnstructured/`) instead of `predict_no_state`: any body
  in, the hook's bytes out with its Content-Type, as DRUM does.
- Transform models (transform.py) are served on `POST $URL_PREFIX/transform/` instead: a CSV or
  a sparse Matrix Market file under the form key `X` (or as the body), and optionally `y`, in;
  DRUM's multipart answer out (`X.format`, `X.transformed`: the transformed frame as CSV, or as
  Matrix Market with `X.colnames` when it is sparse, row for row).
- `POST $URL_PREFIX/chat/completions` (and `/v1/chat/completions`) and `GET $URL_PREFIX/models`
  (and `/v1/models`): OpenAI's chat completions from a model's `chat()` hook (chat.py).

Each worker loads the model in a background thread, so the port answers 503 during a slow load
instead of refusing connections; predictions that arrive meanwhile wait for the load, up to
CUSTOM_MODEL_LOAD_WAIT seconds (default 60). When the load fails the worker logs the traceback
and exits, and the whole server stops with exit code 4 (see cli.py, which also catches a worker
killed during its load, e.g. for lack of memory): a model that cannot load must not leave a
server up that never gets ready.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from flask import Flask, Response, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES, parse_options_header
from werkzeug.wsgi import get_input_stream

from cmkit_runtime import __version__, chat, flask_extension, loader, transform, wire
from cmkit_runtime.outputs import BadPredictions, format_predictions
from cmkit_runtime.target import Target
from cmkit_runtime.unstructured import ROUTES as UNSTRUCTURED_ROUTES
from cmkit_runtime.unstructured import BadUnstructured
from cmkit_runtime.workers import APP_LOAD_ERROR, GENERATION, HOOKS_FLAG, loading_marker, workers_loading

orjson: ModuleType | None
try:  # orjson parses and writes JSON several times faster; the environment image ships it
    import orjson
except ImportError:  # pragma: no cover - exercised by a test that hides orjson
    orjson = None

try:  # pandas >= 3.0: a frame straight from its blocks, each placed at its columns
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older pandas keeps the isetitem / concat paths
    _from_blocks = None

log = logging.getLogger("cmkit_runtime")


class BadRequest(Exception):
    """The request cannot be turned into a DataFrame (HTTP 422)."""


def normalise_prefix(raw: str) -> str:
    """URL_PREFIX as "" or "/a/b": the routes live at prefix + "/" and prefix + "/predict_no_state/"."""
    stripped = raw.strip("/")
    return f"/{stripped}" if stripped else ""


class ModelHolder:
    """Loads the model in a background thread; requests wait on it or get 503."""

    def __init__(self, code_dir: Path, target: Target) -> None:
        self.code_dir = code_dir
        self.target = target
        self.model: loader.LoadedModel | None = None
        self._loaded = threading.Event()
        self._marker: str | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    def wait(self, seconds: float) -> bool:
        return self._loaded.wait(seconds)

    def start(self) -> None:
        self._marker = self._create_marker()
        # A daemon thread: a worker told to stop during a slow load must not wait for it.
        threading.Thread(target=self._load, name="load_model", daemon=True).start()

    @staticmethod
    def _create_marker() -> str | None:
        if os.environ.get(HOOKS_FLAG) != "1":
            return None
        path = loading_marker(os.getppid(), os.getpid())
        try:
            with open(path, "w"):
                pass
        except OSError:
            return None
        return path

    def _fail(self) -> None:
        log.exception("the model failed to load; stopping the server")
        for handler in log.handlers:
            handler.flush()
        # With a marker, the master's hook halts the server (once, however many workers fail);
        # without, gunicorn's own app-load-error code does. os._exit: the worker must go now,
        # and this is not the main thread.
        os._exit(1 if self._marker else APP_LOAD_ERROR)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            model = loader.load(self.code_dir, self.target)
        except BaseException:
            self._fail()
        self.model = model
        if self._marker:
            with contextlib.suppress(OSError):
                os.remove(self._marker)
        # Logged before the worker reports ready, so that a 200 implies the lines are written.
        artifact = f", artifact {model.artifact}" if model.artifact else ""
        log.info("model format %s (hooks: %s%s)", model.format, ", ".join(model.hooks) or "none", artifact)
        log.info("model loaded in %.2fs", time.perf_counter() - started)
        # What is alive now (the imports, the model) lives as long as the worker: moved out of
        # the collector's reach, a request's collections scan only what the request made. A
        # 10,000-column JSON body makes 10,000 lists, enough to trigger full collections that
        # walked every loaded object: about 10 of the 18 ms its parsing took.
        gc.collect()
        gc.freeze()
        self._loaded.set()

    def info(self) -> dict[str, Any]:
        model = self.model
        return {
            "runtime": "cmkit-runtime",
            "runtimeVersion": __version__,
            "requestFormats": list(wire.REQUEST_FORMATS),
            "columnarKeep": True,
            "loaded": self.loaded,
            "modelFormat": model.format if model else None,
            "hooks": list(model.hooks) if model else [],
            "artifact": model.artifact if model else None,
            "generation": int(os.environ.get(GENERATION) or 0),
            "masterPid": os.getppid(),
            "workersLoading": workers_loading(os.getppid()) if os.environ.get(HOOKS_FLAG) == "1" else None,
            **self.target.to_dict(),
        }


def capabilities(target: Target, model: loader.LoadedModel | None) -> dict[str, Any]:
    """What this server offers, for clients that ask before sending (`GET /capabilities/`).

    Deliberately without DRUM's `supported_payload_formats` key: cmkit's checks read that key as
    "this is DRUM, send CSV to /predict/" (cmkit/checks/protocols.py).
    """
    return {
        "runtime": "cmkit-runtime",
        "targetType": target.type.drum_name,
        "predictionRoutes": list(prediction_routes(target)),
        "requestFormats": request_formats(target),
        # DRUM's key and meaning: chat() is defined (None while the model loads).
        "supported_methods": {"chat": bool(model.chat.chat) if model else None},
        # False: a model with chat() and no score()/predict()/artifact, asked on /chat/completions only.
        "predictions": model.predicts if model else None,
    }


def prediction_routes(target: Target) -> tuple[str, ...]:
    """The routes that answer this type's requests (DRUM's), under the prefix."""
    if target.type.unstructured:
        return UNSTRUCTURED_ROUTES
    if target.type.transforms:
        return transform.ROUTES
    return ("/predict_no_state/",)


def request_formats(target: Target) -> list[str]:
    """What the prediction routes read: any body (unstructured), a CSV or a Matrix Market file (transform),
    else the runtime's JSON forms."""
    if target.type.unstructured:
        return ["any"]
    if target.type.transforms:
        return ["csv", "mtx"]
    return list(wire.REQUEST_FORMATS)


def loads(body: bytes) -> Any:
    return orjson.loads(body) if orjson is not None else json.loads(body)


def dumps(document: Any) -> bytes:
    """Strict JSON (NaN and infinity were refused earlier); numpy arrays and scalars allowed."""
    if orjson is not None:
        written: bytes = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
        return written
    return json.dumps(document, allow_nan=False, default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# The Python type of each JSON value, as a bit: a column's kind is the OR of its values' bits.
_FLOAT, _INT, _NULL, _BOOL = 1, 2, 4, 8
_KIND_BITS = {float: _FLOAT, int: _INT, type(None): _NULL, bool: _BOOL}
# Columns made float64: floats, floats and integers, any of them with nulls, and all-null columns,
# which DRUM reads from DataRobot's CSV as float64 NaN (pd.read_csv), where pandas would make
# the JSON list [None, ...] an object column (a Booster's DMatrix refuses that one).
_FLOATISH_BITS = np.array([_FLOAT, _FLOAT | _INT, _FLOAT | _NULL, _INT | _NULL, _FLOAT | _INT | _NULL, _NULL])
_FLOATISH = np.isin(np.arange(16), _FLOATISH_BITS)  # by kind bits: a lookup, not a search per request
_ALL_NUMERIC = frozenset({float, int, type(None)})
MAX_INSERTED = 32  # columns of another dtype added one by one to a float block


def build_frame(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The request's columns as a DataFrame, with the dtypes pandas would infer from the lists.

    A payload of numbers and nulls (the usual one, and every request of the null-value check)
    becomes one 2-D array per dtype in a few C calls, with no Python work per column: a
    1,000-column request costs what its values cost, not 1,000 Series. Anything else (strings,
    booleans mixed with numbers, integers beyond int64) goes column by column, as before. A small
    request (a single row of a usual model) skips the one-step path's fixed NumPy cost: its
    columns are sorted by kind in Python. Every path gives the same frame
    (tests/runtime/test_frames.py holds each of them to it).
    """
    values = list(columns.values())
    rows = len(values[0])
    if _from_blocks is not None and len(values) * rows <= SMALL_REQUEST:
        small = _small_frame(list(columns), values)
        if small is not None:
            return small
    if _long(rows, len(values)):
        return frame_by_column(columns)
    flat = list(chain.from_iterable(values))  # one flat list: numpy converts it twice as fast as nested ones
    return _flat_frame(list(columns), len(values[0]), flat, lambda: columns)


# Long data (many rows, not thousands of columns) goes column by column: NumPy converts each
# column's list in C, where the one-step path's census of every value's type costs ~250 ns a value
# (a 10,000-row batch of four columns: 0.9 ms by column, 5-11 ms in one step). The one-step path
# keeps what it is for: many columns of few rows, where pandas' cost per column dominates.
LONG_ROWS = 64
LONG_MAX_COLUMNS = 2000


def _long(rows: int, columns: int) -> bool:
    return rows >= LONG_ROWS and columns <= LONG_MAX_COLUMNS


# A request of at most this many values (a single row of a usual model) has its columns sorted by
# kind in Python: the one-step path's two dozen NumPy calls cost ~40 us whatever the size.
SMALL_REQUEST = 64
_OTHER = 16  # any type but float, int, None and bool: the general path
# All-null columns are float64 NaN, as DRUM reads them (see _FLOATISH_BITS).
_DTYPES = {_INT: np.int64, _BOOL: np.bool_} | {int(bits): np.float64 for bits in _FLOATISH_BITS}


def _small_frame(names: list[str], values: list[list[Any]]) -> pd.DataFrame | None:
    """A few values: one block per dtype straight from the lists; None for the general path."""
    positions: dict[Any, list[int]] = {}
    get = _KIND_BITS.get
    for i, column in enumerate(values):
        bits = 0
        for value in column:
            bits |= get(type(value), _OTHER)
        dtype = _DTYPES.get(bits)
        if dtype is None:
            return None
        if dtype is np.float64 and bits & _INT and any(type(v) is int and abs(v) >= 2**63 for v in column):
            return None  # integers beyond int64 among floats: pandas keeps them as objects
        positions.setdefault(dtype, []).append(i)
    try:
        blocks = [
            (np.array([values[i] for i in where], dtype=dtype), np.array(where, dtype=np.intp))
            for dtype, where in positions.items()
        ]
    except OverflowError:  # integers beyond int64: pandas keeps them as objects
        return None
    frame: pd.DataFrame = _from_blocks(blocks, index=pd.RangeIndex(len(values[0])), columns=_columns_index(names))
    return frame


def _flat_frame(
    names: list[str], rows: int, flat: list[Any], columns: Callable[[], dict[str, list[Any]]]
) -> pd.DataFrame:
    """The frame of `flat` (column after column, `rows` values each); `columns` for the general path."""
    if _long(rows, len(names)):
        return frame_by_column(columns())
    types = set(map(type, flat))
    if types <= _ALL_NUMERIC or types == {bool}:
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            return _numeric_frame(_columns_index(names), rows, flat, types)
    return frame_by_column(columns())


_last_columns: tuple[list[str], pd.Index] | None = None


def _columns_index(names: list[str]) -> pd.Index:
    """The columns as a pandas Index, reused while requests keep the same columns.

    The checks send thousands of requests with the same 10,000 names; inferring the Index's
    dtype from them again each time cost a few milliseconds a request. An Index is immutable,
    so frames may share one.
    """
    global _last_columns
    last = _last_columns  # one read: another thread may replace it meanwhile
    if last is not None and last[0] == names:
        shared: pd.Index = last[1].copy()  # a new object (sharing the values): a model may set its .name
        return shared
    index = pd.Index(names)
    _last_columns = (names, index)
    fresh: pd.Index = index.copy()
    return fresh


def _numeric_frame(names: pd.Index, rows: int, flat: list[Any], types: set[type]) -> pd.DataFrame:
    shape = (len(names), rows)
    if types == {bool}:
        return _frame(np.array(flat, dtype=bool).reshape(shape), names)
    if types == {int}:
        return _frame(np.array(flat, dtype=np.int64).reshape(shape), names)
    matrix = np.array(flat, dtype=np.float64).reshape(shape)  # JSON null -> NaN (JSON itself has no NaN)
    # Integer and float columns side by side: which are all integers? One bit per value.
    census = _census(flat, shape) if int in types else None
    return _float_frame(names, matrix, _column_kinds(matrix, census), _slices(flat, rows))


def _census(flat: list[Any], shape: tuple[int, int]) -> np.ndarray:
    """Each column's kind bits: the OR of its values' types (numbers and nulls only)."""
    bits = np.fromiter(map(_KIND_BITS.__getitem__, map(type, flat)), dtype=np.uint8, count=shape[0] * shape[1])
    census: np.ndarray = np.bitwise_or.reduce(bits.reshape(shape), axis=1)
    return census


def _column_kinds(matrix: np.ndarray, census: np.ndarray | None) -> np.ndarray:
    """The census when integers are among the values; else each column is a float or all null."""
    if census is not None and (census & _INT).any():
        return census
    kinds: np.ndarray = np.where(np.isnan(matrix).all(axis=1), _NULL, _FLOAT)
    return kinds


def _slices(flat: list[Any], rows: int) -> Callable[[int], list[Any]]:
    return lambda i: flat[i * rows : (i + 1) * rows]


def _float_frame(
    names: pd.Index, matrix: np.ndarray, kinds: np.ndarray, values_of: Callable[[int], list[Any]]
) -> pd.DataFrame:
    """The frame of `matrix` (one row per column, as floats), each column of its kind."""
    integers = (kinds & _INT) != 0
    if integers.any() and (np.abs(matrix[integers]) >= 2.0**63).any():
        raise OverflowError("integers beyond int64: pandas keeps them as objects")
    floatish = _FLOATISH[kinds]
    if floatish.all():
        return _frame(matrix, names)
    return _mixed_frame(names, values_of, matrix, kinds, floatish)


def _frame(matrix: np.ndarray, names: pd.Index | list[str]) -> pd.DataFrame:
    # (columns, rows) transposed is a view: pandas stores it as one block without copying.
    frame: pd.DataFrame = pd.DataFrame(matrix.T, columns=names, copy=False)
    return frame


def _mixed_frame(
    names: pd.Index,
    values_of: Callable[[int], list[Any]],
    matrix: np.ndarray,
    kinds: np.ndarray,
    floatish: np.ndarray,
) -> pd.DataFrame:
    """Float (all-null ones included) and int64 columns: one block per dtype, in the request's column order."""
    if not (floatish | (kinds == _INT)).all():
        raise ValueError("booleans among numbers: pandas makes such a column object")
    if _from_blocks is not None:
        return _blocks_frame(names, values_of, matrix, kinds, floatish)
    others = np.flatnonzero(~floatish)

    def column(i: int) -> np.ndarray:
        return np.array(values_of(i), dtype=np.int64)  # exact, not through float64

    if len(others) <= MAX_INSERTED:
        # The null check's request: every column a float but one. Replacing that one costs
        # nothing per value, where concatenating blocks and reordering copies the whole frame;
        # and the frame keeps the shared Index of its columns, whose hash table a model's
        # column lookups then reuse instead of building one over 10,000 names per request.
        frame = _frame(matrix, names)
        for i in others:
            frame.isetitem(int(i), column(int(i)))
        return frame
    parts = [_frame(matrix[floatish], names[floatish])] if floatish.any() else []
    positions = np.flatnonzero(kinds == _INT)
    if len(positions):
        parts.append(_frame(np.array([column(int(i)) for i in positions]), names[positions]))
    frame = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    return frame if frame.columns.equals(names) else frame[names]


def _blocks_frame(
    names: pd.Index,
    values_of: Callable[[int], list[Any]],
    matrix: np.ndarray,
    kinds: np.ndarray,
    floatish: np.ndarray,
) -> pd.DataFrame:
    """One block per dtype placed at its columns: no column inserted one by one, no concat, no reorder.

    The float columns stay views of `matrix` while they form few runs (the null check's request:
    two, around its null column); else they are one copied block. A one-row request of int and
    float columns costs ~10 us here, where inserting each int column into a float frame cost ~30 us
    a column (pandas splits the float block at each insertion).
    """
    rows = matrix.shape[1]
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    floats = np.flatnonzero(floatish)
    if len(floats):
        breaks = np.flatnonzero(floats[1:] - floats[:-1] != 1) + 1  # where a run of float columns ends
        if len(breaks) < MAX_INSERTED:
            edges = [0, *breaks.tolist(), len(floats)]
            firsts = floats[edges[:-1]].tolist()
            for first, size in zip(firsts, np.diff(edges).tolist(), strict=True):
                blocks.append((matrix[first : first + size], np.arange(first, first + size)))
        else:
            blocks.append((matrix[floats], floats))
    integers = np.flatnonzero(kinds == _INT)
    if len(integers):  # exact, not through float64
        blocks.append((np.array([values_of(i) for i in integers.tolist()], dtype=np.int64), integers))
    frame: pd.DataFrame = _from_blocks(blocks, index=pd.RangeIndex(rows), columns=names)
    return frame


def frame_by_column(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The general path: each column that NumPy reads as plain numbers becomes an array first.

    pandas then skips its per-value inference, which is most of a request's cost for small
    models; other columns (strings, nulls among values) are left to pandas' inference.
    """
    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        # An all-null column is float64 NaN, as DRUM's pd.read_csv reads it (see _FLOATISH_BITS).
        array = np.full(len(values), np.nan) if values.count(None) == len(values) else np.array(values)
        arrays[name] = array if array.dtype.kind in "biuf" and array.ndim == 1 else values
    kinds = {a.dtype for a in arrays.values() if isinstance(a, np.ndarray)}
    # copy=False: the arrays and lists are this request's own, pandas need not copy them again.
    if len(kinds) == 1 and all(isinstance(a, np.ndarray) for a in arrays.values()):
        # One shared numeric dtype: a single 2-D block, as pandas would store it anyway.
        block: pd.DataFrame = pd.DataFrame(np.column_stack(list(arrays.values())), columns=list(arrays), copy=False)
        return block
    frame: pd.DataFrame = pd.DataFrame(arrays, copy=False)
    return frame


def parse_request(body: bytes) -> pd.DataFrame:
    """`{"X": {column: [values]}}` -> a DataFrame with the columns in the order given."""
    try:
        document = loads(body)
    except ValueError:  # includes UnicodeDecodeError and orjson's JSONDecodeError
        raise BadRequest('the body is not JSON; send {"X": {"column": [value, ...], ...}}') from None
    if not isinstance(document, dict) or "X" not in document:
        raise BadRequest('the body has no "X"; send {"X": {"column": [value, ...], ...}}')
    columns = document["X"]
    if not isinstance(columns, dict) or not columns:
        raise BadRequest('"X" must be an object mapping each column name to a list of values')
    # C-level passes over the columns: a request may have thousands of them.
    if set(map(type, columns.values())) != {list} or len(set(map(len, columns.values()))) != 1:
        _refuse_columns(columns)
    if not next(iter(columns.values())):
        raise BadRequest('"X" has no rows')
    return build_frame(columns)


COLUMNAR_SHAPE = '{"columns": [name, ...], "rows": N, "values": [N values of each column, column after column]}'


class NotKept(Exception):
    """A short columnar body names values this worker does not keep (HTTP 409, wire.py)."""

    def __init__(self, key: str) -> None:
        super().__init__(f'this worker keeps no values under {key!r}; send the whole body with "keep"')
        self.key = key


class Kept:
    """The values of a columnar body sent with "keep", and what every request on them shares."""

    def __init__(self, key: str, names: list[str], rows: int, flat: list[Any]) -> None:
        self.key, self.names, self.rows, self.flat = key, names, rows, flat

    @cached_property
    def numeric(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The values as floats (one row per column) and each column's kind bits, worked out once;
        None unless they are all numbers and nulls (the general path then does as for a body)."""
        if not set(map(type, self.flat)) <= _ALL_NUMERIC:
            return None
        shape = (len(self.names), self.rows)
        try:
            matrix = np.array(self.flat, dtype=np.float64).reshape(shape)
        except (ValueError, TypeError, OverflowError):
            return None
        return matrix, _census(self.flat, shape)

    def frame(self, nulls: list[int]) -> pd.DataFrame:
        """What the whole body with these columns made null gives: the same frame, from the
        floats and kinds worked out once (a copy of the floats per request, no pass over values)."""
        numeric = self.numeric
        if nulls and numeric is not None:
            matrix, census = numeric[0].copy(), numeric[1].copy()
            matrix[nulls], census[nulls] = np.nan, _NULL
            with contextlib.suppress(ValueError, TypeError, OverflowError):
                kinds = _column_kinds(matrix, census)
                return _float_frame(_columns_index(self.names), matrix, kinds, _slices(self.flat, self.rows))
        flat = wire.with_nulls(self.flat, self.rows, nulls) if nulls else self.flat
        return _flat_frame(self.names, self.rows, flat, lambda: _by_column(self.names, self.rows, flat))


# The last columnar body sent with "keep", one per worker, replaced whole (one assignment, so a
# reading thread sees the old one or the new).
_kept: Kept | None = None


def parse_columnar(body: bytes) -> pd.DataFrame:
    """The runtime's own body (wire.COLUMNAR) -> the DataFrame its `{"X": ...}` twin would give."""
    try:
        document = loads(body)
    except ValueError:
        raise BadRequest(f"the body is not JSON; send {COLUMNAR_SHAPE}") from None
    if isinstance(document, dict) and wire.FROM in document:
        kept = _kept_values(document[wire.FROM])
        return kept.frame(_null_positions(document.get(wire.NULLS, []), len(kept.names)))
    names, rows, flat = _sent_values(document)
    nulls = document.get(wire.NULLS)
    if nulls is not None:
        flat = wire.with_nulls(flat, rows, _null_positions(nulls, len(names)))
    return _flat_frame(names, rows, flat, lambda: _by_column(names, rows, flat))


def _by_column(names: list[str], rows: int, flat: list[Any]) -> dict[str, list[Any]]:
    return {name: flat[i * rows : (i + 1) * rows] for i, name in enumerate(names)}


def _sent_values(document: Any) -> tuple[list[str], int, list[Any]]:
    """A whole columnar body's names, rows and values, checked; kept when it asks."""
    global _kept
    if not isinstance(document, dict) or not {"columns", "rows", "values"} <= document.keys():
        raise BadRequest(f"send {COLUMNAR_SHAPE}")
    names, rows, flat = document["columns"], document["rows"], document["values"]
    last = _last_columns
    if last is None or last[0] != names:
        _check_names(names)
    else:  # the previous request's names, checked already; the cached list makes the Index lookup an identity check
        names = last[0]
    if type(rows) is not int or rows < 1:
        raise BadRequest('"rows" must be a positive number of rows')
    if not isinstance(flat, list) or len(flat) != rows * len(names):
        raise BadRequest(f'"values" must hold {rows} values for each of the {len(names)} columns')
    key = document.get(wire.KEEP)
    if key is not None:
        _kept = Kept(_key(key), names, rows, flat)
    return names, rows, flat


def _kept_values(key: Any) -> Kept:
    key, kept = _key(key), _kept
    if kept is None or kept.key != key:
        raise NotKept(key)
    return kept


def _key(key: Any) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= wire.MAX_KEY:
        raise BadRequest(f'"{wire.KEEP}" and "{wire.FROM}" take a name of 1 to {wire.MAX_KEY} characters')
    return key


def _null_positions(nulls: Any, count: int) -> list[int]:
    if not isinstance(nulls, list) or any(type(i) is not int or not 0 <= i < count for i in nulls):
        raise BadRequest(f'"{wire.NULLS}" must list column positions, from 0 to {count - 1}')
    if len(set(nulls)) != len(nulls):
        raise BadRequest(f'"{wire.NULLS}" names a column twice')
    return nulls


def _check_names(names: Any) -> None:
    if not isinstance(names, list) or not names or set(map(type, names)) != {str}:
        raise BadRequest('"columns" must be a non-empty list of column names')
    if len(set(names)) != len(names):
        raise BadRequest('"columns" names a column twice')


def _refuse_columns(columns: dict[str, Any]) -> None:
    """Say which column is not a list, or which lengths differ."""
    lengths: dict[int, str] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise BadRequest(f"column {name!r} must be a list of values, one per row")
        lengths.setdefault(len(values), name)
    shown = ", ".join(f"{name!r} has {length}" for length, name in lengths.items())
    raise BadRequest(f"columns must all have the same number of rows: {shown}")


def _json(status: int, document: Any) -> Response:
    return Answer.json(status, document).response()


@dataclass(frozen=True)
class Answer:
    """A route's answer, written by Flask or straight to WSGI: the same status line, headers and body."""

    status: int
    body: bytes
    mimetype: str = "application/json"
    events: Iterator[bytes] | None = None  # a stream of server-sent events instead of `body` (chat)

    @classmethod
    def json(cls, status: int, document: Any) -> Answer:
        return cls(status, dumps(document))

    @classmethod
    def of_chat(cls, answer: chat.ChatAnswer) -> Answer:
        if answer.events is not None:
            return cls(answer.status, b"", chat.EVENTS_MIMETYPE, answer.events)
        return cls.json(answer.status, answer.document)

    def response(self) -> Response:
        if self.events is not None:
            return Response(self.events, status=self.status, mimetype=self.mimetype)
        return Response(self.body, status=self.status, mimetype=self.mimetype)

    def headers(self) -> list[tuple[str, str]]:
        """What werkzeug writes: for a bytes body of a mimetype it gives no charset (JSON), its length;
        for a stream (text/*: werkzeug adds utf-8), no length (the server chunks it)."""
        if self.events is not None:
            return [("Content-Type", f"{self.mimetype}; charset=utf-8")]
        return [("Content-Type", self.mimetype), ("Content-Length", str(len(self.body)))]

    def iterable(self) -> Iterable[bytes]:
        return self.events if self.events is not None else [self.body]


# A hot route answers a request's body, mimetype and WSGI environ (for its headers); its table
# maps a path to (method, route).
HotRoute = Callable[[bytes, str, Mapping[str, Any]], Answer]


class HotRoutes:
    """A WSGI app in front of Flask's: the routes every prediction takes, answered directly.

    A request on a hot route's path with its method reads the body as Flask would (Content-Length,
    or to the end of a chunked body), calls the route and writes its Answer as Flask would have
    (tests/runtime/test_hot_routes.py compares them byte for byte). Any other path or method (a
    405, a redirect for a missing slash, HEAD, /info/) goes to Flask. Routes are added to the
    table: a new target type's prediction route is one more entry.
    """

    def __init__(self, flask_app: Callable[..., Any], routes: Mapping[str, tuple[str, HotRoute]]) -> None:
        self.flask_app = flask_app
        self.routes = dict(routes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        hot = self.routes.get(environ.get("PATH_INFO", ""))
        if hot is None or environ.get("REQUEST_METHOD") != hot[0]:
            return self.flask_app(environ, start_response)
        try:
            body = get_input_stream(environ).read()
            answer = hot[1](body, parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower(), environ)
        except HTTPException as exc:  # e.g. a client gone before the whole body arrived: as Flask answers it
            return exc(environ, start_response)
        except Exception:  # what Flask does with an exception a view lets out: logged, a bare 500
            log.exception("Exception on %s [%s]", environ.get("PATH_INFO"), environ.get("REQUEST_METHOD"))
            return InternalServerError()(environ, start_response)
        start_response(f"{answer.status} {HTTP_STATUS_CODES[answer.status].upper()}", answer.headers())
        return answer.iterable()


def _configure_logging() -> None:
    # Under gunicorn, log through its error log (stderr, its format and level); the author's
    # own loggers go to stderr at INFO.
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers and not log.handlers:
        log.handlers = list(gunicorn_log.handlers)
        log.setLevel(gunicorn_log.level)
        log.propagate = False
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
        )


def code_dir_from(environ: Mapping[str, str]) -> Path:
    """Where the bundle is: CODE_DIR as DataRobot sets it, else the current directory."""
    return Path(environ.get("CODE_DIR") or os.getcwd()).resolve()


def create_app(code_dir: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """The WSGI app of one worker: routes under URL_PREFIX, and the model loading in the background."""
    environ = os.environ if environ is None else environ
    _configure_logging()
    folder = Path(code_dir).resolve() if code_dir is not None else code_dir_from(environ)
    target = Target.from_sources(folder, environ)
    prefix = normalise_prefix(environ.get("URL_PREFIX", ""))
    load_wait = float(environ.get("CUSTOM_MODEL_LOAD_WAIT") or 60)
    holder = ModelHolder(folder, target)

    app = Flask(__name__)

    def ping() -> Response:
        if holder.loaded:
            return Response(status=200)
        return _json(503, {"message": "the model is loading"})

    def info() -> Response:
        return _json(200, holder.info())

    def answer_prediction(body: bytes, mimetype: str, _environ: Mapping[str, Any] | None = None) -> Answer:
        if not holder.wait(load_wait) or holder.model is None:
            return Answer.json(503, {"message": f"the model is still loading after {load_wait:g}s; retry later"})
        try:
            frame = parse_columnar(body) if mimetype == wire.COLUMNAR else parse_request(body)
        except BadRequest as exc:
            return Answer.json(422, {"message": str(exc)})
        except NotKept as exc:
            return Answer.json(wire.KEPT_STATUS, {"message": str(exc), wire.MISSING: exc.key})
        model = holder.model
        try:
            predictions = format_predictions(model.predict(frame), target, len(frame), model.source)
        except BadPredictions as exc:
            log.error("%s", exc)
            return Answer.json(500, {"message": str(exc)})
        except Exception as exc:
            log.exception("%s failed", model.source)
            return Answer.json(500, {"message": f"{model.source} raised {type(exc).__name__}: {exc}"})
        return Answer.json(200, {"predictions": predictions})

    def predict_no_state() -> Response:
        return answer_prediction(request.get_data(), request.mimetype).response()

    def predict_unstructured() -> Response:
        if not holder.wait(load_wait) or holder.model is None or holder.model.unstructured is None:
            return _json(503, {"message": f"the model is still loading after {load_wait:g}s; retry later"})
        model, score = holder.model, holder.model.unstructured
        try:
            answer = score(request.get_data(), request.content_type, request.args, dict(request.headers))
        except BadUnstructured as exc:
            log.error("%s", exc)
            return _json(500, {"message": str(exc)})
        except Exception as exc:
            log.exception("%s failed", model.source)
            return _json(500, {"message": f"{model.source} raised {type(exc).__name__}: {exc}"})
        response = Response(answer.body, status=200)
        if answer.content_type is None:
            del response.headers["Content-Type"]
        else:
            response.headers["Content-Type"] = answer.content_type
        return response

    def transform_frame() -> Response:
        if not holder.wait(load_wait) or holder.model is None or holder.model.transformer is None:
            return _json(503, {"message": f"the model is still loading after {load_wait:g}s; retry later"})
        model, transformer = holder.model, holder.model.transformer
        try:
            data, target_frame = transform.request_frames(request.files, request.get_data(), request.mimetype)
            answer = transform.transformed(transformer, data, target_frame)
        except transform.BadTransform as exc:
            log.error("%s", exc)
            return _json(exc.status, {"message": str(exc)})
        except Exception as exc:
            log.exception("%s failed", model.source)
            return _json(500, {"message": f"{model.source} raised {type(exc).__name__}: {exc}"})
        return Response(answer.body, status=200, content_type=answer.content_type)

    def offered() -> Response:
        return _json(200, capabilities(target, holder.model))

    def chat_model() -> tuple[Any, chat.ChatHooks] | None:
        if not holder.wait(load_wait) or holder.model is None:
            return None
        return holder.model.instance, holder.model.chat

    # DRUM's endpoint names (its blueprint is "model_api"): a custom_flask.py names them, e.g. to
    # leave model_api.ping without auth as DataRobot's flask_extension_httpauth template does.
    app.add_url_rule(f"{prefix}/", "model_api.ping", ping, methods=["GET"])
    app.add_url_rule(f"{prefix}/info/", "model_api.info", info, methods=["GET"])
    app.add_url_rule(f"{prefix}/capabilities/", "model_api.capabilities", offered, methods=["GET"])
    chat.add_routes(app, prefix, target.type, chat_model, _json)

    def hot_chat(body: bytes, mimetype: str, environ: Mapping[str, Any]) -> Answer:
        def headers() -> dict[str, str]:  # as dict(request.headers) gives them to chat()
            return dict(EnvironHeaders(dict(environ)))

        return Answer.of_chat(chat.answer_chat(chat_model(), target.type, body, mimetype, headers))

    # Each type's prediction routes (DRUM's): what the 404 and 405 answers name.
    if target.type.unstructured or target.type.transforms:
        served = [f"{prefix}{route}" for route in prediction_routes(target)]
        answer = predict_unstructured if target.type.unstructured else transform_frame
        for route in prediction_routes(target):
            name = f"model_api.{route.strip('/')}"
            app.add_url_rule(f"{prefix}{route}", name, answer, methods=["POST"])
    else:
        served = [f"{prefix}/predict_no_state/"]
        name = "model_api.predict_no_state"
        app.add_url_rule(f"{prefix}/predict_no_state/", name, predict_no_state, methods=["POST"])

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return _json(404, {"message": f"no such route; the model serves {prefix}/ and {' and '.join(served)}"})

    @app.errorhandler(405)
    def wrong_method(_error: Exception) -> Response:
        return _json(405, {"message": f"use GET {prefix}/ and POST {served[0]}"})

    # DRUM's custom_flask.py, after the routes as DRUM does. Its init_app may guard every route
    # (auth, before_request hooks), so then every route stays Flask's.
    if not flask_extension.apply(app, folder):
        # The hot routes skip Flask (its request context, routing and Response: ~160 us of a
        # single-row request's ~450); every other route, method and error goes through it.
        hot: dict[str, tuple[str, HotRoute]] = {f"{prefix}{route}": ("POST", hot_chat) for route in chat.CHAT_ROUTES}
        if prediction_routes(target) == ("/predict_no_state/",):
            hot[f"{prefix}/predict_no_state/"] = ("POST", answer_prediction)
        app.wsgi_app = HotRoutes(app.wsgi_app, hot)  # type: ignore[method-assign]
    log.info("cmkit-runtime %s serving a %s model from %s at %s/", __version__, target.type, folder, prefix)
    holder.start()
    return app
