"""The model server of this bundle. You do not need to edit it: your code goes in custom.py.

start_server.sh runs it under gunicorn (`server:create_app()`), one copy per worker process.

Routes, mounted under URL_PREFIX (normalised to "" or "/a/b"):

- `GET  $URL_PREFIX/`: 200 with an empty body once the model is loaded, 503 while it loads.
- `POST $URL_PREFIX/predict_no_state/`: body `{"X": {"column": [value, ...], ...}}` (JSON null is
  a missing value). Answers `{"predictions": [...]}`: numbers for regression and anomaly models,
  `{label: probability, ...}` per row for classifiers. 422 for a malformed request, 500 when
  predict() raises or returns something unusable, each with `{"message": ...}`.

Each worker loads the model in a background thread (custom.load_model), so the port answers 503
during a slow load instead of refusing connections; predictions that arrive meanwhile wait for
the load, up to CUSTOM_MODEL_LOAD_WAIT seconds (default 60). When the load fails the worker
logs the traceback and exits, and the whole server stops with exit code 4 (see gunicorn.conf.py,
which also catches a worker killed during its load, e.g. for lack of memory): a model that
cannot load must not leave a server up that never gets ready.

The target type and class labels come from model-metadata.yaml next to this file, read the way
DataRobot reads it (every value a string); the environment variables TARGET_TYPE,
POSITIVE_CLASS_LABEL, NEGATIVE_CLASS_LABEL and CLASS_LABELS (comma-separated) override it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from flask import Flask, Response, request

try:  # orjson parses and writes JSON several times faster; the environment image ships it
    import orjson
except ImportError:  # pragma: no cover - exercised by a test that hides orjson
    orjson = None

CODE_DIR = Path(__file__).resolve().parent
METADATA_FILE = "model-metadata.yaml"
TARGET_TYPES = ("regression", "binary", "multiclass", "anomaly")
# gunicorn's exit code for "the application could not be loaded": its master halts instead of
# starting a new worker (which would fail the same way, forever).
APP_LOAD_ERROR = 4
# Set by gunicorn.conf.py in the master: it halts the server when a worker dies while its
# loading marker exists.
HOOKS_FLAG = "MODEL_SERVER_HALTS_ON_LOAD_FAILURE"
# Tolerance of the check that each row's probabilities sum to 1 (float32 models land near 1e-7).
PROBABILITY_TOLERANCE = 1e-5

log = logging.getLogger("model_server")


class ConfigurationError(Exception):
    """model-metadata.yaml and the environment do not describe a model this server can serve."""


class BadRequest(Exception):
    """The request cannot be turned into a DataFrame (HTTP 422)."""


class BadPredictions(Exception):
    """predict() returned something that cannot be sent as predictions (HTTP 500)."""


@dataclass(frozen=True)
class Target:
    """What the model predicts: its type and, for classifiers, the labels in declared order."""

    type: str
    labels: tuple[str, ...] = ()  # binary: (positive, negative); multiclass: classLabels

    @classmethod
    def from_sources(cls, code_dir: Path, environ: Mapping[str, str]) -> Target:
        meta = _read_metadata(code_dir / METADATA_FILE)
        model = meta.get("inferenceModel") if isinstance(meta.get("inferenceModel"), dict) else {}
        target_type = (environ.get("TARGET_TYPE") or meta.get("targetType") or "").lower()
        if target_type not in TARGET_TYPES:
            raise ConfigurationError(
                f"target type {target_type!r} is not one of {', '.join(TARGET_TYPES)}: "
                f"set targetType in {METADATA_FILE} or the TARGET_TYPE environment variable"
            )
        if target_type == "binary":
            positive = environ.get("POSITIVE_CLASS_LABEL") or model.get("positiveClassLabel")
            negative = environ.get("NEGATIVE_CLASS_LABEL") or model.get("negativeClassLabel")
            if not positive or not negative or positive == negative:
                raise ConfigurationError(
                    "a binary model needs two different labels: set inferenceModel.positiveClassLabel and "
                    f"negativeClassLabel in {METADATA_FILE} (or POSITIVE_CLASS_LABEL and NEGATIVE_CLASS_LABEL)"
                )
            return cls(target_type, (str(positive), str(negative)))
        if target_type == "multiclass":
            if environ.get("CLASS_LABELS"):
                labels = [label.strip() for label in environ["CLASS_LABELS"].split(",")]
            else:
                labels = [str(label) for label in model.get("classLabels") or []]
            if len(labels) < 2 or len(set(labels)) != len(labels) or not all(labels):
                raise ConfigurationError(
                    f"a multiclass model needs 2 or more different labels: set inferenceModel.classLabels in "
                    f"{METADATA_FILE} (or CLASS_LABELS=a,b,c)"
                )
            return cls(target_type, tuple(labels))
        return cls(target_type)


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    # BaseLoader keeps every scalar a string, as DataRobot reads the file: a label `1` stays "1".
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    return data if isinstance(data, dict) else {}


def normalise_prefix(raw: str) -> str:
    """URL_PREFIX as "" or "/a/b": the routes live at prefix + "/" and prefix + "/predict_no_state/"."""
    stripped = raw.strip("/")
    return f"/{stripped}" if stripped else ""


def _not_loaded(_model: Any, _frame: pd.DataFrame) -> Any:
    raise RuntimeError("the model is not loaded")


class ModelHolder:
    """Loads the author's model in a background thread; requests wait on it or get 503."""

    def __init__(self, code_dir: Path) -> None:
        self.code_dir = code_dir
        self.model: Any = None
        self.predict: Callable[[Any, pd.DataFrame], Any] = _not_loaded
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
        """The file gunicorn.conf.py's master hook looks for (same name there) to tell a load that died."""
        if os.environ.get(HOOKS_FLAG) != "1":
            return None
        path = os.path.join(tempfile.gettempdir(), f"model-server-loading-{os.getppid()}-{os.getpid()}")
        try:
            with open(path, "w"):
                pass
        except OSError:
            return None
        return path

    def _fail(self) -> None:
        log.exception("load_model failed; stopping the server")
        for handler in log.handlers:
            handler.flush()
        # With a marker, the master's hook halts the server (once, however many workers fail);
        # without, gunicorn's own app-load-error code does. os._exit: the worker must go now,
        # and this is not the main thread.
        os._exit(1 if self._marker else APP_LOAD_ERROR)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            if str(self.code_dir) not in sys.path:
                sys.path.insert(0, str(self.code_dir))
            custom = importlib.import_module("custom")
            model = custom.load_model(str(self.code_dir))
            predict = custom.predict
        except BaseException:
            self._fail()
        self.model, self.predict = model, predict
        if self._marker:
            with contextlib.suppress(OSError):
                os.remove(self._marker)
        # Logged before the worker reports ready, so that a 200 implies the line is written.
        log.info("model loaded in %.2fs", time.perf_counter() - started)
        self._loaded.set()


def loads(body: bytes) -> Any:
    return orjson.loads(body) if orjson is not None else json.loads(body)


def dumps(document: Any) -> bytes:
    """Strict JSON (NaN and infinity were refused earlier); numpy arrays and scalars allowed."""
    if orjson is not None:
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(document, allow_nan=False, default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def build_frame(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The request's columns as a DataFrame, with the dtypes pandas would infer from the lists.

    Columns that NumPy reads as plain numbers (no nulls, no strings) are converted first: pandas
    then skips its per-value inference, which is most of a request's cost for small models.
    """
    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        array = np.array(values)
        arrays[name] = array if array.dtype.kind in "biuf" and array.ndim == 1 else values
    kinds = {a.dtype for a in arrays.values() if isinstance(a, np.ndarray)}
    # copy=False: the arrays and lists are this request's own, pandas need not copy them again.
    if len(kinds) == 1 and all(isinstance(a, np.ndarray) for a in arrays.values()):
        # One shared numeric dtype: a single 2-D block, as pandas would store it anyway.
        return pd.DataFrame(np.column_stack(list(arrays.values())), columns=list(arrays), copy=False)
    return pd.DataFrame(arrays, copy=False)


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
    lengths: dict[int, str] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise BadRequest(f"column {name!r} must be a list of values, one per row")
        lengths.setdefault(len(values), name)
    if len(lengths) > 1:
        shown = ", ".join(f"{name!r} has {length}" for length, name in lengths.items())
        raise BadRequest(f"columns must all have the same number of rows: {shown}")
    if 0 in lengths:
        raise BadRequest('"X" has no rows')
    return build_frame(columns)


def _as_array(raw: Any) -> np.ndarray:
    values = raw.to_numpy() if isinstance(raw, pd.DataFrame | pd.Series) else raw
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise BadPredictions(f"predict() must return numbers: {exc}") from None


def _check_finite(values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise BadPredictions(
            f"predict() returned a non-finite value (NaN or infinity) for row {row}; "
            "JSON cannot carry it: impute or clip in predict()"
        )


def _check_rows(values: np.ndarray, rows: int) -> None:
    if values.ndim == 0 or values.shape[0] != rows:
        got = 1 if values.ndim == 0 else values.shape[0]
        raise BadPredictions(f"predict() returned {got} predictions for {rows} rows")


def _label_columns(raw: Any, labels: tuple[str, ...]) -> Any:
    """A DataFrame whose columns are exactly the labels is taken by name, in declared order."""
    if isinstance(raw, pd.DataFrame) and {str(c) for c in raw.columns} == set(labels) and raw.shape[1] == len(labels):
        return raw.set_axis([str(c) for c in raw.columns], axis=1)[list(labels)]
    return raw


def _check_probabilities(matrix: np.ndarray) -> None:
    _check_finite(matrix)
    if ((matrix < 0) | (matrix > 1)).any():
        raise BadPredictions("predict() returned probabilities outside [0, 1]")
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise BadPredictions(f"the class probabilities of row {row} sum to {sums[row]:.6g}, not 1")


def format_predictions(raw: Any, target: Target, rows: int) -> list[Any] | np.ndarray:
    """predict()'s output -> the JSON predictions list for this target type, or BadPredictions."""
    if target.type in ("regression", "anomaly"):
        values = _as_array(raw)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        _check_rows(values, rows)
        if values.ndim != 1:
            raise BadPredictions(f"predict() must return one number per row, got shape {values.shape}")
        _check_finite(values)
        return values  # an array: dumps() writes it without building a Python list
    if target.type == "binary":
        positive, negative = target.labels
        named = _label_columns(raw, (negative, positive))
        values = _as_array(named)
        _check_rows(values, rows)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim == 1:  # positive-class probabilities
            values = np.column_stack((1.0 - values, values))
        if values.ndim != 2 or values.shape[1] != 2:
            raise BadPredictions(
                "a binary predict() returns positive-class probabilities (one per row) or an (n, 2) "
                f"matrix ordered [negative, positive], got shape {values.shape}"
            )
        _check_probabilities(values)
        return [{positive: p, negative: q} for q, p in values.tolist()]
    labels = target.labels
    values = _as_array(_label_columns(raw, labels))
    _check_rows(values, rows)
    if values.ndim != 2 or values.shape[1] != len(labels):
        raise BadPredictions(
            f"a multiclass predict() returns an (n, {len(labels)}) probability matrix in the order of "
            f"classLabels {list(labels)}, got shape {values.shape}"
        )
    _check_probabilities(values)
    return [dict(zip(labels, row, strict=True)) for row in values.tolist()]


def _json(status: int, document: Any) -> Response:
    return Response(dumps(document), status=status, mimetype="application/json")


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


def create_app(code_dir: str | Path = CODE_DIR, environ: Mapping[str, str] | None = None) -> Flask:
    """The WSGI app of one worker: routes under URL_PREFIX, and the model loading in the background."""
    environ = os.environ if environ is None else environ
    _configure_logging()
    code_dir = Path(code_dir)
    target = Target.from_sources(code_dir, environ)
    prefix = normalise_prefix(environ.get("URL_PREFIX", ""))
    load_wait = float(environ.get("CUSTOM_MODEL_LOAD_WAIT") or 60)
    holder = ModelHolder(code_dir)

    app = Flask(__name__)

    def ping() -> Response:
        if holder.loaded:
            return Response(status=200)
        return _json(503, {"message": "the model is loading"})

    def predict_no_state() -> Response:
        if not holder.wait(load_wait):
            return _json(503, {"message": f"the model is still loading after {load_wait:g}s; retry later"})
        try:
            frame = parse_request(request.get_data())
        except BadRequest as exc:
            return _json(422, {"message": str(exc)})
        try:
            raw = holder.predict(holder.model, frame)
        except Exception as exc:
            log.exception("predict failed")
            return _json(500, {"message": f"predict() raised {type(exc).__name__}: {exc}"})
        try:
            predictions = format_predictions(raw, target, len(frame))
        except BadPredictions as exc:
            log.error("%s", exc)
            return _json(500, {"message": str(exc)})
        return _json(200, {"predictions": predictions})

    app.add_url_rule(f"{prefix}/", "ping", ping, methods=["GET"])
    app.add_url_rule(f"{prefix}/predict_no_state/", "predict_no_state", predict_no_state, methods=["POST"])

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return _json(404, {"message": f"no such route; the model serves {prefix}/ and {prefix}/predict_no_state/"})

    @app.errorhandler(405)
    def wrong_method(_error: Exception) -> Response:
        return _json(405, {"message": f"use GET {prefix}/ and POST {prefix}/predict_no_state/"})

    log.info("serving a %s model at %s/predict_no_state/", target.type, prefix)
    holder.start()
    return app
