"""Finding and ending every process a local model server started, including ones that escaped.

The process runtime starts `start_server.sh` as the leader of a new session and ends its process
group; a server that daemonizes (forks, calls setsid, forks again) leaves that group and used to
outlive the run. Every process inherits its parent's environment unless it replaces it on
purpose, so the runtime gives the server one variable, `CMKIT_SERVER_ID`, with a value unique
to the run, and at the end finds every process that still carries it in `/proc/<pid>/environ`,
wherever it moved (new session, re-parented to init), and ends it.

Limits (documented in README): a process that execs with a fresh environment (`env -i`) is not
found; without `/proc` (macOS) only the process group is ended. Anything that could not be ended
is reported, never silently left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

MARKER = "CMKIT_SERVER_ID"
_PROC = Path("/proc")


def new_marker() -> str:
    return secrets.token_hex(8)


def can_track() -> bool:
    """Whether processes can be found by their environment here (Linux /proc)."""
    return (_PROC / "self" / "environ").exists()


def marked_processes(value: str) -> list[int]:
    """Live processes (not zombies) whose environment holds MARKER=value, this one excluded."""
    needle = f"{MARKER}={value}".encode()
    found = []
    for entry in _PROC.iterdir() if can_track() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):  # ended meanwhile, or not ours to read
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def end_marked(value: str, grace: float) -> tuple[list[int], list[int]]:
    """End every process carrying the marker: SIGTERM, then SIGKILL after `grace` seconds.

    Returns (the processes found, those still alive at the end).
    """
    found = marked_processes(value)
    if not found:
        return [], []
    _signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = found
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = marked_processes(value)
    # A few rounds: a process may fork between our scan and our signal.
    for _ in range(5):
        if not alive:
            break
        _signal_all(alive, signal.SIGKILL)
        time.sleep(0.1)
        found += [pid for pid in alive if pid not in found]
        alive = marked_processes(value)
    return sorted(set(found)), alive
