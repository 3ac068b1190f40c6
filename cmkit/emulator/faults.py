"""Fault injection and the request journal, as WSGI middleware in front of the API.

Faults are decided before the API sees a request, so a faulted request changes nothing:
- a rate (`--fault-rate`): that fraction of API requests is answered with `--fault-status`
  and `Retry-After`;
- rules set at run time through the admin routes: answer the next N matching requests with a
  status, or drop the connection (close the socket without a response) for them.

The journal lists every API request: sequence number, method, path, status (null when the
connection was dropped), body bytes received and when it started. Tests use it to assert what
a client sent, e.g. how many bytes a push uploaded.
"""

from __future__ import annotations

import collections
import itertools
import json
import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from cmkit.emulator.common import now

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

WSGIApp = Callable[["WSGIEnvironment", Callable[..., Any]], Iterable[bytes]]
API_PREFIX = "/api/v2/"
JOURNAL_SIZE = 100_000
ACTIONS = ("status", "drop")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_STATUS = {"type": "integer", "minimum": 100, "maximum": 599}
_RETRY_AFTER = {"type": ["integer", "null"], "minimum": 0, "maximum": 86400}
# The admin bodies, checked before anything changes: a rule holding `"method": 5` once turned
# every later API request into a 500.
RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"enum": list(ACTIONS)},
        "count": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "status": _STATUS,
        "retryAfter": _RETRY_AFTER,
        "method": {"type": ["string", "null"], "enum": [*METHODS, *(m.lower() for m in METHODS), None]},
        "path": {"type": ["string", "null"], "maxLength": 1000},
    },
}
SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "status": {**_STATUS, "type": ["integer", "null"]},
        "retryAfter": _RETRY_AFTER,
    },
}


class RuleDoc(TypedDict):
    """A fault rule as the admin routes show it."""

    id: int
    action: str
    status: int
    method: str | None
    path: str | None
    count: int
    remaining: int
    retryAfter: int | None


class FaultSettings(TypedDict):
    """GET /__emulator__/faults: the random fault rate and the rules still armed."""

    rate: float
    status: int
    retryAfter: int | None
    rules: list[RuleDoc]


class JournalEntry(TypedDict):
    """One request of the journal (GET /__emulator__/requests); `status` None until answered."""

    seq: int
    method: str
    path: str
    status: int | None
    bytesReceived: int
    started: str


@dataclass
class FaultRule:
    """Answer the next `remaining` requests matching `method` and `path` (a regex) with a fault."""

    id: int
    action: str = "status"
    status: int = 503
    retry_after: int | None = 1
    method: str | None = None
    path: str | None = None
    count: int = 1
    remaining: int = 1
    pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.pattern is None or self.pattern.search(path) is not None

    def to_dict(self) -> RuleDoc:
        return RuleDoc(
            id=self.id,
            action=self.action,
            status=self.status,
            method=self.method,
            path=self.path,
            count=self.count,
            remaining=self.remaining,
            retryAfter=self.retry_after,
        )


@dataclass
class Fault:
    action: str
    status: int = 503
    retry_after: int | None = 1


class FaultInjector:
    def __init__(self, rate: float = 0.0, status: int = 503, retry_after: int | None = 1, seed: int | None = None):
        self.rate = rate
        self.status = status
        self.retry_after = retry_after
        self._random = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def settings(self) -> FaultSettings:
        with self._lock:
            return FaultSettings(
                rate=self.rate,
                status=self.status,
                retryAfter=self.retry_after,
                rules=[rule.to_dict() for rule in self._rules],
            )

    def configure(self, rate: float | None = None, status: int | None = None, retry_after: Any = ...) -> None:
        with self._lock:
            if rate is not None:
                self.rate = rate
            if status is not None:
                self.status = status
            if retry_after is not ...:
                self.retry_after = retry_after

    def add_rule(
        self,
        action: str = "status",
        status: int = 503,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = 1,
    ) -> FaultRule:
        rule = FaultRule(
            id=next(self._ids),
            action=action,
            status=status,
            retry_after=retry_after,
            method=method,
            path=path,
            count=count,
            remaining=count,
            pattern=re.compile(path) if path else None,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.rate = 0.0

    def decide(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any: rules first (in the order added), then the rate."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return Fault(rule.action, rule.status, rule.retry_after)
            if self.rate > 0 and self._random.random() < self.rate:
                return Fault("status", self.status, self.retry_after)
        return None


class Journal:
    """The last JOURNAL_SIZE API requests, in arrival order."""

    def __init__(self) -> None:
        self._entries: collections.deque[JournalEntry] = collections.deque(maxlen=JOURNAL_SIZE)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, method: str, path: str, bytes_received: int) -> JournalEntry:
        entry = JournalEntry(seq=0, method=method, path=path, status=None, bytesReceived=bytes_received, started=now())
        with self._lock:
            entry["seq"] = next(self._seq)
            self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[JournalEntry]:
        with self._lock:
            return [e.copy() for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _fault_response(fault: Fault, start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"message": f"Injected fault: HTTP {fault.status}"}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if fault.retry_after is not None:
        headers.append(("Retry-After", str(fault.retry_after)))
    start_response(f"{fault.status} Injected Fault", headers)
    return [body]


class FaultMiddleware:
    """Journal every API request and inject faults before the application runs."""

    def __init__(
        self,
        app: WSGIApp,
        injector: FaultInjector,
        journal: Journal,
        authorized: Callable[[WSGIEnvironment], bool] = lambda environ: True,
    ) -> None:
        self.app = app
        self.injector = injector
        self.journal = journal
        # Faults apply after authentication: a client without the token gets its 401 and
        # cannot use up the rules another client set.
        self.authorized = authorized

    def __call__(self, environ: WSGIEnvironment, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(API_PREFIX):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        entry = self.journal.start(method, path, int(environ.get("CONTENT_LENGTH") or 0))

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        fault = self.injector.decide(method, path) if self.authorized(environ) else None
        if fault is not None and fault.action == "drop":
            drop_connection()
        if fault is not None:
            return _fault_response(fault, recording_start_response)
        return self.app(environ, recording_start_response)


def drop_connection() -> None:
    """Make waitress close the socket without writing a response.

    Waitress treats `ClientDisconnected` raised by the application as "the peer went away": it
    logs at info level and closes the connection with nothing written (see waitress.channel).
    Nothing has reached the application yet, so the request is not processed.
    """
    from waitress.channel import ClientDisconnected

    raise ClientDisconnected("connection dropped by an injected fault")
