"""What an emulator that was killed (`kill -9`, a crash, a power cut) leaves behind, ended at the next start.

While a model test runs, the emulator records it in `DIR/run/servers/<testId>.json`, and the
model server it starts carries `CMKIT_EMULATOR_SERVER=<data dir hash>:<testId>` in its
environment (inherited by everything it starts, daemons that left its session included). At
the next start on the same data directory, before any job runs:

- processes carrying this data directory's marker are ended (their process group when they
  lead one; SIGTERM, then SIGKILL after a grace period). Found through /proc: Linux only;
- containers labelled with this data directory's `cmkit.emulator` hash are removed (Docker);
- temporaries (`DIR/tmp`: partial uploads, download spools, half-extracted contexts) and the
  test work folders (`DIR/tests`) are cleared, and the records removed.

One emulator per data directory (the lock in `store.py`) is what makes all of this safe: at
start nothing of this directory can belong to a live emulator.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmkit.emulator.common import now
from cmkit.emulator.validation import safe_id

if TYPE_CHECKING:
    from cmkit.emulator.service import Emulator

LOG = logging.getLogger("cmkit.emulator")
MARKER_ENV = "CMKIT_EMULATOR_SERVER"
RECORDS = ("run", "servers")
STOP_GRACE = 3.0


@dataclass
class Cleaned:
    """What a start found and ended."""

    processes: list[int] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)


def marker(emu: Emulator, test_id: str) -> str:
    return f"{emu.digest}:{test_id}"


def record(emu: Emulator, test_id: str, runtime: str) -> Path:
    """Note a model test about to start a server; `forget` once it is stopped."""
    path = emu.dir(*RECORDS) / f"{safe_id(test_id)}.json"
    path.write_text(json.dumps({"marker": marker(emu, test_id), "runtime": runtime, "started": now()}))
    return path


def forget(emu: Emulator, test_id: str) -> None:
    (emu.dir(*RECORDS) / f"{safe_id(test_id)}.json").unlink(missing_ok=True)


def clean(emu: Emulator) -> Cleaned:
    """End the previous run's model servers and clear its temporaries."""
    cleaned = Cleaned()
    records = sorted(emu.dir(*RECORDS).glob("*.json"))
    cleaned.records = [path.stem for path in records]
    cleaned.processes = end_marked_processes(f"{emu.digest}:")
    cleaned.containers = _remove_containers(emu)
    for path in records:
        path.unlink(missing_ok=True)
    for folder in ("tmp", "tests"):
        _empty(emu.dir(folder))
    if cleaned.processes or cleaned.containers:
        LOG.warning(
            "ended what a previous emulator run left running: processes %s, containers %s",
            cleaned.processes,
            cleaned.containers,
        )
    return cleaned


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def marked_processes(prefix: str) -> list[int]:
    """Pids whose environment holds `CMKIT_EMULATOR_SERVER=<prefix>...` (Linux /proc; [] elsewhere)."""
    needle = f"{MARKER_ENV}={prefix}".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def end_marked_processes(prefix: str, grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM the marked processes (their groups when they lead one), SIGKILL what remains."""
    pids = marked_processes(prefix)
    if not pids:  # the usual case at a start: one scan of /proc, not three
        return []
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and marked_processes(prefix):
        time.sleep(0.05)
    for pid in marked_processes(prefix):
        _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _remove_containers(emu: Emulator) -> list[str]:
    client: Any = getattr(emu.engine, "client", None)
    labels = emu.engine.labels()
    if client is None or "cmkit.emulator" not in labels:
        return []
    removed = []
    try:
        containers = client.containers.list(all=True, filters={"label": f"cmkit.emulator={labels['cmkit.emulator']}"})
    except Exception as exc:  # the engine went away: nothing to remove now
        LOG.warning("could not list the previous run's containers: %s", exc)
        return []
    for container in containers:
        with contextlib.suppress(Exception):
            container.remove(force=True)
            removed.append(container.id)
    return removed
