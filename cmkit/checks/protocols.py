"""The two prediction protocols a model server may speak, and how to tell which one it speaks.

- `predict_no_state`, the seed's contract (cmkit's runtime): `POST {prefix}/predict_no_state/`
  with `{"X": {column: [values]}}` as JSON.
- `drum`, DRUM's prediction server (`drum server`, which DataRobot's drop-in environments
  start): `POST {prefix}/predict/` with the dataset as CSV (`text/csv` body, read by DRUM with
  `pandas.read_csv`, so a null travels as an empty field, and a one-column dataset's null as a
  blank line, which DRUM reads back as NaN).

Both answer `{"predictions": [...]}` in the same shapes (DRUM writes its prediction frame with
`to_json(orient="records")`: numbers, or one object of label probabilities per row), so the
checks judge both with the same rules. The checks build `predict_no_state` bodies; a protocol
turns them into its own request, which is why no check knows which protocol is in use.

Detection: DRUM puts an `X-Drum-Version` header on every answer and has `GET
{prefix}/capabilities/`; a server with neither speaks `predict_no_state`. Of those, cmkit's
runtime also reads a columnar body (cmkit_runtime/wire.py) when its `GET {prefix}/info/` says
so: the null-value check's requests, which would otherwise cost a JSON list per column each,
use it; every other request stays DataRobot's JSON. What was found (or
forced with `--protocol`) is a `KnownProtocol`: state of one run's client (cmkit/checks/client.py),
shared with the clients it lends to the load checks, so every request of the run uses it and
no run inherits what an earlier server on the same port spoke.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cmkit_runtime import wire

PREDICT_NO_STATE = "predict_no_state"
DRUM = "drum"
PROTOCOL_NAMES = (PREDICT_NO_STATE, DRUM)
DRUM_VERSION_HEADER = "X-Drum-Version"


@dataclass(frozen=True)
class KeptTwin:
    """The same request as values the server keeps (cmkit_runtime/wire.py's "keep" and "from").

    `short` names values sent before; `whole` sends them, for the server to keep, when a worker
    answers that it has none under that name.
    """

    short: Callable[[], bytes]
    whole: Callable[[], bytes]


@dataclass(frozen=True)
class Payload:
    """A check's request: its `predict_no_state` JSON body and what other forms of it are made from.

    `columns`, when kept, are the columns the body was encoded from (DRUM's CSV is written from
    them without parsing the body again); `columnar` builds the same request in cmkit-runtime's
    columnar form (cmkit_runtime/wire.py), sent instead when the server offers it; `kept` the
    same request again, as values the server keeps, for servers that keep them.
    """

    body: bytes
    columns: Mapping[str, list[Any]] | None = None
    columnar: Callable[[], bytes] | None = None
    kept: KeptTwin | None = None

    def column_values(self) -> Mapping[str, list[Any]]:
        """The request's columns: those kept, else parsed from the body."""
        if self.columns is not None:
            return self.columns
        return json.loads(self.body)["X"]  # type: ignore[no-any-return]


def encode_payload(columns: dict[str, list[Any]]) -> Payload:
    """A `predict_no_state` body that keeps its columns (a protocol may turn them into CSV)."""
    return Payload(orjson.dumps({"X": columns}), columns)


def _cell(value: Any) -> str:
    """One CSV field as the csv module writes it (floats by their shortest exact repr)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if any(c in value for c in _SPECIAL):
            return '"' + value.replace('"', '""') + '"'
        return value
    return repr(value) if isinstance(value, float) else str(value)


_SPECIAL = (",", '"', "\n", "\r")
# The fields of each column, formatted once: nullValueImputation sends the same columns in every
# request but one, and formatting 80,000 fields per request would cost more than DRUM's answer.
# Keyed by the list's identity, the list kept alongside so that a reused id cannot match.
_cells: dict[int, tuple[list[Any], list[str]]] = {}
MAX_CACHED_COLUMNS = 4096


def _column_cells(values: list[Any]) -> list[str]:
    cached = _cells.get(id(values))
    if cached is not None and cached[0] is values:
        return cached[1]
    cells = [_cell(value) for value in values]
    if len(_cells) >= MAX_CACHED_COLUMNS:
        _cells.clear()
    _cells[id(values)] = (values, cells)
    return cells


def csv_body(columns: Mapping[str, list[Any]]) -> bytes:
    """The columns as the CSV DRUM reads: a header, one line per row, None as an empty field."""
    header = ",".join(_cell(str(name)) for name in columns)
    if len(columns) == 1:  # a lone empty field is written quoted, as the csv module does
        only = next(iter(columns.values()))
        rows = ['""' if value is None else _cell(value) for value in only]
    else:
        rows = [",".join(row) for row in zip(*(_column_cells(v) for v in columns.values()), strict=True)]
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Protocol:
    name: str
    route: str  # under the URL prefix
    content_type: str

    def request_body(self, payload: Payload) -> bytes:
        """A check's `predict_no_state` body in this protocol's form."""
        if self.name == DRUM:
            return csv_body(payload.column_values())
        return payload.body

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "route": self.route}


PROTOCOLS = {
    PREDICT_NO_STATE: Protocol(PREDICT_NO_STATE, "/predict_no_state/", "application/json"),
    DRUM: Protocol(DRUM, "/predict/", "text/csv; charset=utf-8"),
}


@dataclass(frozen=True)
class Detected:
    protocol: Protocol
    how: str  # "forced", "X-Drum-Version header", "/capabilities/", "no DRUM marker"
    drum_version: str | None = None
    columnar: bool = False  # the server's /info/ offers cmkit-runtime's columnar body
    keeps: bool = False  # ... and keeps a columnar body's values ("columnarKeep", runtime 0.4.0)

    def sent_as(self, payload: Payload) -> str:
        """The form `payload` travels in to this server: "csv" (DRUM), "columnar" or "json"."""
        return self.form(has_columnar_twin=payload.columnar is not None)

    def form(self, has_columnar_twin: bool) -> str:
        """The form a body travels in to this server, given whether it can be built columnar."""
        if self.protocol.name == DRUM:
            return "csv"
        return "columnar" if self.columnar and has_columnar_twin else "json"

    def sends_short(self, has_kept_twin: bool) -> bool:
        """Whether a body with a kept twin (the null check's, which has a columnar one too) goes
        to this server as the short form on values its workers keep (wire.py's "from")."""
        return has_kept_twin and self.keeps and self.form(has_columnar_twin=True) == "columnar"

    def request(self, payload: Payload) -> tuple[bytes, str]:
        """A check's request as this server takes it, and its Content-Type."""
        if payload.kept is not None and self.sends_short(True):
            return payload.kept.short(), wire.COLUMNAR
        if payload.columnar is not None and self.sent_as(payload) == "columnar":
            return payload.columnar(), wire.COLUMNAR
        return self.protocol.request_body(payload), self.protocol.content_type

    def resend(self, payload: Payload, status: int, text: str) -> bytes | None:
        """The whole body to send after a short one named values the worker does not keep, else None."""
        kept = payload.kept
        if status != wire.KEPT_STATUS or kept is None or not self.sends_short(True):
            return None
        try:
            answer = json.loads(text)
        except ValueError:
            return None
        return kept.whole() if isinstance(answer, dict) and wire.MISSING in answer else None

    def to_dict(self) -> dict[str, object]:
        found: dict[str, object] = {**self.protocol.to_dict(), "how": self.how}
        if self.columnar:
            found["columnar"] = True
        if self.keeps:
            found["columnarKeep"] = True
        return {**found, "drumVersion": self.drum_version} if self.drum_version else found


def forced(name: str) -> Detected:
    """The protocol `--protocol` names; ValueError for a name that is none."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}' (use {' or '.join(PROTOCOL_NAMES)})")
    return Detected(PROTOCOLS[name], "forced")


class KnownProtocol:
    """What one server speaks, for one run: forced, or detected by its first readiness answer.

    Owned by the run's ModelClient and shared with the clients it lends (`ModelClient.sibling`),
    whose threads may detect at once: hence the lock.
    """

    def __init__(self, forced_name: str | None = None) -> None:
        self._lock = threading.Lock()
        self._detected = forced(forced_name) if forced_name is not None else None

    @property
    def detected(self) -> Detected | None:
        with self._lock:
            return self._detected

    def remember(self, detected: Detected) -> Detected:
        """Record what the server speaks; a forced protocol is never replaced by a detection."""
        with self._lock:
            if self._detected is not None and self._detected.how == "forced":
                return self._detected
            self._detected = detected
            return detected


def from_headers(headers: Mapping[str, str]) -> Detected | None:
    version = headers.get(DRUM_VERSION_HEADER)
    if version:
        return Detected(PROTOCOLS[DRUM], f"{DRUM_VERSION_HEADER} header", version)
    return None


def offers_columnar(status: int, text: str) -> bool:
    """cmkit-runtime's `/info/` lists the request bodies it reads; other servers have no such route."""
    info = _info(status, text)
    return wire.COLUMNAR in (info.get("requestFormats") or ())


def keeps_columnar(status: int, text: str) -> bool:
    """cmkit-runtime 0.4.0 and later keep a columnar body's values for the short form (wire.py)."""
    return _info(status, text).get("columnarKeep") is True


def _info(status: int, text: str) -> dict[str, Any]:
    if status != 200:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def from_capabilities(status: int, text: str) -> Detected:
    """DRUM's `/capabilities/` answers an object naming its payload formats; others a 404."""
    if status == 200:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and "supported_payload_formats" in body:
            return Detected(PROTOCOLS[DRUM], "/capabilities/")
    return Detected(PROTOCOLS[PREDICT_NO_STATE], "no DRUM marker")
