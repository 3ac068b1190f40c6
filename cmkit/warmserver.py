"""Warm servers: `cmkit serve` leaves a note of the server it runs, and `cmkit predict` uses it.

A served bundle's note (in cmkit's cache, `servers/`) says where it answers and what it was
started with: the bundle folder, DataRobot's variables (target, labels, runtime parameters)
and a fingerprint of the bundle's files. `predict` on the same bundle, with the same variables
and unchanged files, sends its rows there instead of building and starting a server of its
own (seconds saved, and the server's log stays where the user watches it). A note whose
`serve` is gone, or whose server does not answer, is removed and ignored; `serve --watch`
writes its note again after every change it brings to the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cmkit.bundle import list_bundle
from cmkit.engine.base import ExitInfo, Server
from cmkit.paths import cache_dir

NOTE_VERSION = 1


def notes_dir() -> Path:
    return cache_dir() / "servers"


def fingerprint(bundle: Path) -> str:
    """The bundle's file set as a server loaded it: paths, sizes and modification times."""
    digest = hashlib.sha256()
    for file in sorted(list_bundle(bundle).files, key=lambda file: file.path):
        with contextlib.suppress(OSError):
            stat = file.source.stat()
            digest.update(f"{file.path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def contract_digest(contract: Mapping[str, str]) -> str:
    """DataRobot's variables, hashed: runtime parameter values may be credentials, never written."""
    return hashlib.sha256(json.dumps(sorted(contract.items())).encode()).hexdigest()


@dataclass(frozen=True)
class WarmServer:
    """A server `cmkit serve` runs: where it answers, and the note that says so."""

    url: str  # the server's URL, its prefix included
    url_prefix: str
    runtime: str
    pid: int  # the `cmkit serve` process
    note: Path


def write_note(server: Server, bundle: Path, contract: Mapping[str, str]) -> Path:
    """Record `server` as this process's warm server of `bundle` (replacing its earlier note)."""
    folder = notes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    bundle = bundle.resolve()
    note = folder / f"{hashlib.sha256(str(bundle).encode()).hexdigest()[:16]}-{os.getpid()}.json"
    document = {
        "version": NOTE_VERSION,
        "bundle": str(bundle),
        "url": server.url,
        "urlPrefix": server.url_prefix,
        "runtime": server.runtime,
        "pid": os.getpid(),
        "contract": contract_digest(contract),
        "fingerprint": fingerprint(bundle),
    }
    draft = note.with_suffix(".draft")
    draft.write_text(json.dumps(document), encoding="utf-8")
    os.replace(draft, note)  # a reader never sees half a note
    return note


def remove_note(note: Path | None) -> None:
    if note is not None:
        with contextlib.suppress(OSError):
            note.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours to use
        return False
    return True


def _notes(bundle: Path) -> Iterator[tuple[Path, dict[str, object]]]:
    prefix = hashlib.sha256(str(bundle).encode()).hexdigest()[:16]
    for note in sorted(notes_dir().glob(f"{prefix}-*.json")):
        try:
            document = json.loads(note.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("version") == NOTE_VERSION:
            yield note, document


def find_warm_server(bundle: Path, contract: Mapping[str, str]) -> WarmServer | None:
    """A running `serve` of `bundle` with the same variables and unchanged files, if any.

    Notes of a `serve` that is gone are removed. Whether the server answers is the caller's
    readiness wait (a server that does not answer is not used).
    """
    bundle = bundle.resolve()
    wanted, current = contract_digest(contract), None
    for note, document in _notes(bundle):
        pid = document.get("pid")
        if not isinstance(pid, int) or not _alive(pid):
            remove_note(note)
            continue
        if document.get("bundle") != str(bundle) or document.get("contract") != wanted:
            continue
        current = current or fingerprint(bundle)
        if document.get("fingerprint") != current:
            continue  # edited since the server loaded it (serve --watch writes a new note)
        url, prefix = document.get("url"), document.get("urlPrefix")
        if isinstance(url, str) and isinstance(prefix, str):
            return WarmServer(url, prefix, str(document.get("runtime")), pid, note)
    return None


class AttachedServer(Server):
    """A warm server seen from another cmkit: it is `serve`'s to stop, never this process's."""

    def __init__(self, warm: WarmServer) -> None:
        self.warm = warm
        self.base_url = warm.url[: len(warm.url) - len(warm.url_prefix)] if warm.url_prefix else warm.url
        self.url_prefix = warm.url_prefix
        self.runtime = warm.runtime

    def exit_info(self) -> ExitInfo | None:
        return None if _alive(self.warm.pid) else ExitInfo(None)

    def logs(self, tail: int | None = 50) -> str:
        return ""  # in the terminal of its `cmkit serve`

    def follow_logs(self) -> Iterator[str]:
        return iter(())

    def _stop(self) -> None:
        """Nothing: the server is left running for its `serve`."""

    def describe(self) -> dict[str, object]:
        return {"runtime": self.runtime, "url": self.url, "servedBy": self.warm.pid}
