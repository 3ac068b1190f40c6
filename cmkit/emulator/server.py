"""Run the emulator: waitress (threaded WSGI) in front of the Flask app, until SIGTERM or Ctrl-C.

On a signal the server stops accepting requests, background jobs are cancelled and given time
to record how they ended, and the store is closed. Whatever a hard kill interrupts is recorded
as interrupted at the next start on the same data directory.
"""

from __future__ import annotations

import logging
import resource
import secrets
import signal
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import platformdirs
import waitress

from cmkit.emulator import environments, startup
from cmkit.emulator.app import create_app
from cmkit.emulator.faults import FaultInjector, Journal
from cmkit.emulator.jobs import DockerJobs, JobEngine, ProcessJobs, labels_for
from cmkit.emulator.service import Emulator, EmulatorSettings
from cmkit.emulator.store import DataDirInUse
from cmkit.engine.choice import choose_runtime
from cmkit.errors import InputError
from cmkit.paths import default_environment_dir
from cmkit.secretenv import secret
from cmkit.textfiles import read_utf8

LOG = logging.getLogger("cmkit.emulator")
# Far above the 1 GiB artifacts pushes upload; waitress spools bodies to disk past 512 KiB.
MAX_REQUEST_BODY = 1 << 40
MAX_TOKEN_FILE_BYTES = 64 * 1024
# A connection costs waitress no thread until its request is whole, but it counts against the
# connection limit (waitress: 100), and one that never finishes its headers stayed for 2 min:
# 100 such connections, no token needed, kept every token holder out. So: many more
# connections (within the open-file limit), and a connection silent for IDLE_TIMEOUT seconds
# with no request in progress (headers never finished, or an idle keep-alive) is closed,
# checked every CLEANUP_INTERVAL seconds. A request being answered or a body being sent is
# activity; neither is cut.
MAX_CONNECTIONS = 1000
IDLE_TIMEOUT = 15
CLEANUP_INTERVAL = 2
# A client trickling a header byte every few seconds is never idle, so IDLE_TIMEOUT alone let it
# hold a connection for ever (slow-loris). Headers are a few hundred bytes that any real client
# sends at once: a request whose headers are not whole HEADER_DEADLINE seconds after its first
# byte was seen has its connection closed. Bodies are not bounded this way: a large upload on a
# slow link is legitimate.
HEADER_DEADLINE = 30


@dataclass(frozen=True)
class EmulatorReady:
    """Where a started emulator serves, and with which token (what `cmkit emulator` prints)."""

    endpoint: str
    token: str
    data_dir: str
    runtime: str
    environment_id: str | None  # the seeded environment, when there is one

    def to_dict(self) -> dict[str, object]:
        """The line `cmkit emulator --json` prints."""
        return {
            "endpoint": self.endpoint,
            "token": self.token,
            "dataDir": self.data_dir,
            "runtime": self.runtime,
            "environmentId": self.environment_id,
        }


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path | None = None
    tokens: Sequence[str] = ()
    runtime: str | None = None  # None: Docker when an engine answers, else processes
    fault_rate: float = 0.0
    fault_status: int = 503
    fault_seed: int | None = None
    docker_labels: Mapping[str, str] = field(default_factory=dict)
    threads: int = 16
    seed_environment: Path | None = field(default_factory=default_environment_dir)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cmkit")) / "emulator"


def job_engine(
    runtime: str | None, data_dir: Path, labels: Mapping[str, str], warn: Callable[[str], None]
) -> JobEngine:
    """The emulator's jobs in the runtime asked for, chosen by the rule test-local uses (`choose_runtime`)."""
    choice = choose_runtime(runtime)
    if choice.fallback is not None:
        warn(f"{choice.fallback.message}; using the process runtime")
    if not choice.docker:
        return ProcessJobs()
    from cmkit.engine.docker import docker_client  # here: the docker SDK's import costs 0.3 s

    return DockerJobs(docker_client(), labels_for(data_dir, labels))


def accepted_tokens(given: Sequence[str], token_file: Path | None) -> tuple[str, ...]:
    """The tokens the emulator accepts: `--token`s, the lines of `--token-file`, else
    CMKIT_EMULATOR_TOKEN (taken out of the environment at start, cmkit/secretenv.py). A token
    on the command line is readable by every process of the machine (ps, /proc/<pid>/cmdline),
    among them the models the emulator runs: the file and the variable keep it off it."""
    tokens = list(given)
    if token_file is not None:
        text = read_utf8(token_file, MAX_TOKEN_FILE_BYTES)
        from_file = [line.strip() for line in text.splitlines() if line.strip()]
        if not from_file:
            raise InputError("no token in this file", file=token_file, hint="write one token a line")
        tokens += from_file
    if not tokens:
        variable = secret("CMKIT_EMULATOR_TOKEN")
        if variable is not None:
            tokens.append(variable)
    return tuple(tokens)


def run(options: EmulatorOptions, on_ready: Callable[[EmulatorReady], None], warn: Callable[[str], None]) -> None:
    """Serve until SIGTERM/SIGINT; `on_ready` is told where it serves once it does."""
    if any(not token.strip() for token in options.tokens):
        # Refused before anything starts: an empty token would accept any `Bearer ` header.
        raise InputError("--token must not be empty", hint="pass a secret token, or none to get a random one")
    data_dir = (options.data_dir or default_data_dir()).resolve()
    tokens = tuple(options.tokens) or (secrets.token_urlsafe(24),)
    engine = job_engine(options.runtime, data_dir, options.docker_labels, warn)
    settings = EmulatorSettings(data_dir=data_dir, tokens=tokens, seed_environment=options.seed_environment)
    try:
        emu = Emulator(settings, engine)
    except DataDirInUse as exc:
        raise InputError(str(exc), hint="stop that emulator, or pass another --data-dir") from exc
    except (OSError, sqlite3.Error) as exc:
        raise InputError(f"cannot keep state in {data_dir}: {exc}", hint="pass a writable --data-dir") from exc
    try:
        injector = FaultInjector(options.fault_rate, options.fault_status, seed=options.fault_seed)
        app = create_app(emu, injector, Journal())
        server = _listen(app, options)  # before starting jobs: a taken port must change nothing
        startup.start(emu)
    except BaseException:
        emu.stop()
        raise
    port = server.effective_port
    _stop_on_signals()
    on_ready(
        EmulatorReady(
            f"http://{_display_host(options.host)}:{port}/api/v2/",
            tokens[0],
            str(data_dir),
            engine.runtime,
            environments.seeded_environment_id(emu),
        )
    )
    try:
        server.run()
    finally:
        server.close()
        emu.stop()


def _listen(app: Any, options: EmulatorOptions) -> Any:
    try:
        server = waitress.create_server(  # type: ignore[attr-defined]  # public API, absent from the stubs
            app,
            host=options.host,
            port=options.port,
            threads=options.threads,
            max_request_body_size=MAX_REQUEST_BODY,
            connection_limit=connection_limit(),
            channel_timeout=IDLE_TIMEOUT,
            cleanup_interval=CLEANUP_INTERVAL,
            asyncore_use_poll=True,
            ident="cmkit-emulator",
        )
    except OSError as exc:
        raise InputError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}", hint="--port 0 picks a free port"
        ) from exc
    bound_header_time(server, HEADER_DEADLINE)
    return server


def bound_header_time(server: Any, deadline: float) -> None:
    """Close connections whose request headers are still unfinished `deadline` s after first seen.

    Waitress calls `maintenance(now)` every cleanup interval on its own thread; this adds one
    rule to it. It reads waitress's channel attributes (`active_channels`, a channel's partial
    `request` and its `headers_finished`), the same ones its own idle rule reads. A partial
    request is timed from the first sweep that sees it, so the bound is the deadline plus at
    most one cleanup interval.
    """
    first_seen: dict[int, tuple[object, float]] = {}
    idle_rule = server.maintenance

    def maintenance(now: float) -> None:
        idle_rule(now)
        alive: dict[int, tuple[object, float]] = {}
        for key, channel in list(server.active_channels.items()):
            partial = getattr(channel, "request", None)
            if partial is None or partial.headers_finished:
                continue
            seen, since = first_seen.get(key, (None, now))
            since = since if seen is partial else now
            alive[key] = (partial, since)
            if now - since >= deadline:
                channel.will_close = True
        first_seen.clear()
        first_seen.update(alive)

    server.maintenance = maintenance


def connection_limit() -> int:
    """MAX_CONNECTIONS, or fewer when the open-file limit would not hold them and the data files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - 100 if soft != resource.RLIM_INFINITY else MAX_CONNECTIONS
    return max(100, min(MAX_CONNECTIONS, room))


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _stop_on_signals() -> None:
    """SIGTERM ends the server like Ctrl-C does: waitress stops on SystemExit/KeyboardInterrupt."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
