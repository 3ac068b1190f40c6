"""The emulator as a library: state, background jobs, logs and async statuses, without HTTP.

`Emulator` owns the store, the job runner and the runtime. Resource modules (`models`,
`environments`, `testing`, `datasets`) take it as their first argument and return the API's
JSON documents; `app.py` only maps HTTP onto them.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmkit.emulator.common import new_id, now
from cmkit.emulator.errors import not_found
from cmkit.emulator.jobs import JobRunner, Runtime, data_dir_digest
from cmkit.emulator.reference import Reference, load_reference
from cmkit.emulator.store import Store
from cmkit.emulator.validation import Limits, safe_id

LOG = logging.getLogger("cmkit.emulator")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# How long a stop waits for cancelled jobs to record their end. Model tests stop at once; a
# Docker build cannot be interrupted, and one still running is recorded at the next start.
SHUTDOWN_GRACE = 10.0
INTERRUPTED = "interrupted: the emulator stopped before this job finished"


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


class Emulator:
    def __init__(self, settings: EmulatorSettings, runtime: Runtime, reference: Reference | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        self.reference = reference or load_reference()
        self.store = Store(settings.data_dir)
        self.logs = LogStore(self.store.path("logs"))
        self.jobs = JobRunner(settings.job_workers)
        self.digest = data_dir_digest(settings.data_dir)

    def start(self) -> None:
        """Recover from an earlier run, then make sure the seeded environment exists."""
        from cmkit.emulator import datasets, environments, featureimpact, leftovers, models, testing

        leftovers.clean(self)
        recovers = (environments.recover, models.recover, testing.recover, datasets.recover, featureimpact.recover)
        for recover in recovers:
            recover(self)
        recover_statuses(self)
        environments.seed(self)

    def stop(self, timeout: float = SHUTDOWN_GRACE) -> list[str]:
        """Cancel background jobs, wait for them to record it, close the store."""
        stuck = self.jobs.shutdown(timeout)
        if stuck:
            LOG.warning("jobs still running at shutdown (recovered at next start): %s", ", ".join(stuck))
        self.store.close()
        return stuck

    def dir(self, *parts: str) -> Path:
        return self.store.path(*parts)


# -- async statuses (GET status/{id}/) -----------------------------------------------------------

TERMINAL_STATUSES = ("COMPLETED", "ERROR", "ABORTED", "EXPIRED")


def create_status(emu: Emulator, description: str, status_type: str | None = None) -> str:
    status_id = new_id()
    doc = {
        "statusId": status_id,
        "status": "INITIALIZED",
        "message": "",
        "code": 0,
        "created": now(),
        "description": description,
        "statusType": status_type,
    }
    emu.store.insert("status", status_id, doc)
    return status_id


def set_status(emu: Emulator, status_id: str, status: str, message: str = "", location: str | None = None) -> None:
    """Move a status on; `location` (relative to /api/v2/) is where a COMPLETED job redirects."""
    internal = {"location": location} if location else {}
    emu.store.update("status", status_id, {"status": status, "message": message}, **internal)


def get_status(emu: Emulator, status_id: str) -> tuple[dict[str, Any], str | None]:
    """The status document, and the finished resource's path when the job is COMPLETED."""
    resource = emu.store.get("status", status_id)
    if resource is None:
        raise not_found("Status", status_id)
    location = resource.internal.get("location") if resource.doc["status"] == "COMPLETED" else None
    return resource.doc, location


def recover_statuses(emu: Emulator) -> None:
    for resource in emu.store.list("status"):
        if resource.doc["status"] not in TERMINAL_STATUSES:
            set_status(emu, resource.id, "ERROR", INTERRUPTED)
