"""The emulator as a library: state, background jobs, logs and async statuses, without HTTP.

`Emulator` owns the store, the job runner and the job engine. Resource modules (`models`,
`environments`, `testing`, `datasets`) take it as their first argument and return the API's
JSON documents; `app.py` only maps HTTP onto them. Async statuses live in `status`, the start
(recovery and seeding, which calls every resource module) in `startup`: this module imports none
of the resource modules, so none of them imports it back in a cycle.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmkit.emulator.jobs import JobEngine, JobRunner, data_dir_digest
from cmkit.emulator.reference import Reference, load_reference
from cmkit.emulator.store import Store
from cmkit.emulator.validation import Limits, safe_id

LOG = logging.getLogger("cmkit.emulator")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# How long a stop waits for cancelled jobs to record their end. Model tests stop at once; a
# Docker build cannot be interrupted, and one still running is recorded at the next start.
SHUTDOWN_GRACE = 10.0


@dataclass
class EmulatorSettings:
    data_dir: Path
    tokens: tuple[str, ...]
    seed_environment: Path | None = None  # a docker context folder to seed at first start
    job_workers: int = 8
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if not self.tokens or not all(token.strip() for token in self.tokens):
            # An empty token would let any `Bearer`/`Token` header in.
            raise ValueError("every emulator token must be non-empty")


class LogStore:
    """Job logs as files under `logs/`, appended line by line while the job runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, kind: str, ident: str) -> Path:
        return self.folder / f"{kind}-{safe_id(ident)}.log"

    def writer(self, kind: str, ident: str) -> Any:
        path = self.path(kind, ident)

        def write(line: str) -> None:
            clean = ANSI_ESCAPE.sub("", line).rstrip("\n")  # docker colours pip's stderr
            with path.open("a", encoding="utf-8") as handle:
                handle.write(clean + "\n")

        return write

    def exists(self, kind: str, ident: str) -> bool:
        return self.path(kind, ident).is_file()

    def read(self, kind: str, ident: str) -> str:
        path = self.path(kind, ident)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def tail(self, kind: str, ident: str, lines: int) -> str:
        path = self.path(kind, ident)
        if not path.is_file():
            return ""
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))


class Served:
    """Model servers the emulator keeps running (deployments), by key; closed at stop.

    Held in memory only: after a restart a deployment's server starts again when it is next
    asked for a prediction.
    """

    def __init__(self) -> None:
        self._servers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            return self._servers.get(key)

    def put(self, key: str, server: Any) -> None:
        """Keep `server` (anything with `close()`) under `key`, closing the one it replaces."""
        with self._lock:
            old = self._servers.pop(key, None)
            self._servers[key] = server
        if old is not None:
            old.close()

    def close(self, key: str) -> None:
        with self._lock:
            server = self._servers.pop(key, None)
        if server is not None:
            server.close()

    def close_all(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()


class Emulator:
    def __init__(self, settings: EmulatorSettings, engine: JobEngine, reference: Reference | None = None) -> None:
        self.settings = settings
        self.engine = engine  # builds and model runs, in the runtime the emulator chose
        self.reference = reference or load_reference()
        self.store = Store(settings.data_dir)
        self.logs = LogStore(self.store.path("logs"))
        self.jobs = JobRunner(settings.job_workers)
        self.digest = data_dir_digest(settings.data_dir)
        self.served = Served()

    def stop(self, timeout: float = SHUTDOWN_GRACE) -> list[str]:
        """Cancel background jobs, wait for them to record it, close the store."""
        stuck = self.jobs.shutdown(timeout)
        self.served.close_all()
        if stuck:
            LOG.warning("jobs still running at shutdown (recovered at next start): %s", ", ".join(stuck))
        self.store.close()
        return stuck

    def dir(self, *parts: str) -> Path:
        return self.store.path(*parts)
