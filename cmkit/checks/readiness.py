"""When a started server is ready: `GET {prefix}/` answers 200 (longRunningService's rule).

The one home of that rule: the check suite's longRunningService, `serve`, `--watch` and feature
impact all wait through `wait_until_ready`, with the client they will then predict through, or
through `wait_ready`, which brings its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from cmkit.checks.client import AUTH_HINTS, ModelClient, ServerUnreachable
from cmkit.checks.results import FAILED, SUCCEEDED, CheckResult
from cmkit.diagnosis import strip_ansi
from cmkit.engine.base import Server

POLL_SECONDS = 0.02  # the server's first 200 is detected within this (it counts in the edit loop)
OOM_CHECK_SECONDS = 1.0
# A server that keeps answering something other than 200/503 on the readiness route is up but
# wrong (typically it ignores URL_PREFIX): give up on it after this long instead of the full timeout.
WRONG_ANSWER_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 30


class Canceled(Exception):
    """The run was canceled (Ctrl-C, or DELETE of a test in the emulator)."""


def death_note(server: Server, check_oom: bool = True) -> str | None:
    """If the server has exited or was OOM-killed: how, with the last lines of its log."""
    info = server.exit_info()
    if info is not None:
        what = info.describe()
    elif check_oom and server.oom_killed():
        what = "was killed for exceeding its memory limit (OOM)"
    else:
        return None
    tail = strip_ansi(server.logs(LOG_TAIL_LINES)).strip()
    hint = server.start_hint()
    return f"the server {what}" + (f": {hint}" if hint else "") + (f"; last log lines:\n{tail}" if tail else "")


def wait_until_ready(server: Server, client: ModelClient, timeout: float, cancel: threading.Event) -> CheckResult:
    """Poll `GET {prefix}/` through `client` until 200, the server's end, a wrong answer or `timeout`.

    Succeeded: details hold `startupSeconds` and the `protocol` the client found. Raises Canceled
    when `cancel` is set.
    """
    started = time.monotonic()
    deadline = started + timeout
    wrong_since: float | None = None
    last = "no answer"
    next_oom_check = started + OOM_CHECK_SECONDS
    while time.monotonic() < deadline:
        if cancel.is_set():
            raise Canceled()
        check_oom = time.monotonic() >= next_oom_check
        if check_oom:
            next_oom_check = time.monotonic() + OOM_CHECK_SECONDS
        death = death_note(server, check_oom)
        if death:
            info = server.exit_info()
            details = {"exit": info.to_dict() if info else None, "oomKilled": check_oom and server.oom_killed()}
            return CheckResult(FAILED, f"the server did not start: {death}", details)
        try:
            status = client.ping(timeout=5.0)
        except ServerUnreachable as exc:
            status, last = 0, f"connection failed ({exc})"
        if status == 200:
            seconds = time.monotonic() - started
            protocol = client.protocol
            ready: dict[str, object] = {
                "startupSeconds": round(seconds, 3),
                "protocol": protocol.to_dict() if protocol else None,
            }
            return CheckResult(SUCCEEDED, f"ready in {seconds:.1f}s", ready)
        if status not in (0, 503):
            last = f"HTTP {status}" + AUTH_HINTS.get(status, "")
            wrong_since = wrong_since or time.monotonic()
            if time.monotonic() - wrong_since > WRONG_ANSWER_GRACE_SECONDS:
                return CheckResult(
                    FAILED,
                    f"GET {server.url_prefix}/ keeps answering {last} instead of 200: does the server mount "
                    "its routes under URL_PREFIX?",
                )
        elif status == 503:
            wrong_since, last = None, "HTTP 503 (loading)"
        time.sleep(POLL_SECONDS)
    tail = strip_ansi(server.logs(LOG_TAIL_LINES)).strip()
    return CheckResult(
        FAILED,
        f"GET {server.url_prefix}/ did not answer 200 within {timeout:g}s "
        f"(last: {last})" + (f"; last log lines:\n{tail}" if tail else ""),
    )


def wait_ready(
    server: Server,
    timeout: float,
    cancel: threading.Event | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> CheckResult:
    """`wait_until_ready` with a client of its own (serve, --watch, feature impact); details name the protocol.

    `headers` (--header) go with every poll: a server behind its own auth (custom_flask.py)
    answers the readiness route 401 without them, and would never be ready.
    """
    client = ModelClient(server.url, protocol=protocol, headers=headers)
    try:
        return wait_until_ready(server, client, timeout, cancel or threading.Event())
    finally:
        client.close()
