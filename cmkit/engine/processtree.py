"""Finding and ending every process a local model server started, including ones that escaped.

The process runtime starts `start_server.sh` as the leader of a new session and ends its process
group; a server that daemonizes (forks, calls setsid, forks again) leaves that group and used to
outlive the run. Two nets catch what leaves it:

- a cgroup v2 of its own, where this process may create one (Linux with a writable cgroup2
  hierarchy: as root, or in a delegated systemd scope): the start script is moved into it
  before it runs, every descendant stays in it whatever it does, and `cgroup.kill` ends them all;
- everywhere, the variable `CMKIT_SERVER_ID`, unique to the run: every process inherits its
  parent's environment unless it replaces it on purpose, so at the end every process still
  carrying it in `/proc/<pid>/environ` is ended too, wherever it moved.

Limits (README): without a cgroup, a process that execs with a fresh environment (`env -i`)
is not found; without `/proc` (macOS) only the process group is ended. Whatever could not be
ended is reported, never silently left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

MARKER = "CMKIT_SERVER_ID"
# Who started the server: "<pid>.<start time>" of the cmkit process. A server whose owner is no
# longer running (cmkit was killed with SIGKILL while the model loaded) is a leftover that the
# next start ends, as the emulator does with its own (cmkit/emulator/leftovers.py).
OWNER = "CMKIT_SERVER_OWNER"
_PROC = Path("/proc")
# Moves the shell into the cgroup, then becomes the start script (same pid, same process group).
_ENTER_CGROUP = '{ echo $$ > "$1"; } 2>/dev/null; shift; exec "$@"'


def pauses(first: float = 0.002, longest: float = 0.05) -> Iterator[float]:
    """Waits between polls for a process to end: 2 ms doubling up to 50 ms. Most servers exit
    within milliseconds of SIGTERM; a fixed 50 ms cost that much on every stop (test-local's,
    --watch's, and each of the test suite's)."""
    pause = first
    while True:
        yield pause
        pause = min(longest, pause * 2)


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


def _started(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): with its pid, who it is, reuse aside."""
    try:
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{_started(pid)}"


def _owner_gone(owner: str) -> bool:
    pid, _, _ = owner.partition(".")
    return not pid.isdigit() or owner_id(int(pid)) != owner


# The temporaries a server run keeps in the temporary folder (its log, its contract's files),
# named "<prefix><owner>-<random>" so that what a killed cmkit left is known and removed.
SERVER_LOG_PREFIX = "cmkit-server-"
CONTRACT_PREFIX = "cmkit-contract-"
_OWNED = re.compile(rf"(?:{SERVER_LOG_PREFIX}|{CONTRACT_PREFIX})(\d+\.\d+)-")


def owned_prefix(prefix: str) -> str:
    """`prefix` plus this process as the owner: a temporary name sweep_leftovers can judge."""
    return f"{prefix}{owner_id()}-"


def sweep_leftovers(grace: float = 3.0) -> list[int]:
    """End the servers (and all they started) of cmkit processes that are no longer running,
    and remove their logs and contract files."""
    prefix = f"{OWNER}=".encode()
    orphans: list[int] = []
    for entry in _PROC.iterdir() if can_track() else ():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            owner = next((v for v in (entry / "environ").read_bytes().split(b"\0") if v.startswith(prefix)), None)
            if owner is not None and _owner_gone(owner[len(prefix) :].decode(errors="replace")):
                orphans.append(int(entry.name))
    if orphans:
        _signal_all(orphans, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_alive(pid) for pid in orphans) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_all([pid for pid in orphans if _alive(pid)], signal.SIGKILL)
    parent = _own_cgroup_dir()
    for cgroup in parent.glob("cmkit-*") if parent is not None else ():
        parts = cgroup.name.split("-")
        # cmkit-<owner>-<marker>; a name without an owner is an older cmkit's: not ours to judge.
        if len(parts) == 3 and _owner_gone(parts[1]):  # what dropped the variable (env -i) is still in it
            with contextlib.suppress(OSError):
                (cgroup / "cgroup.kill").write_text("1")
    _remove_gone_owners_temporaries()
    return orphans


def _remove_gone_owners_temporaries() -> None:
    """The server logs and contract folders of cmkit processes no longer running (SIGKILL)."""
    for path in Path(tempfile.gettempdir()).glob("cmkit-*-*"):
        owned = _OWNED.match(path.name)
        if owned is None or not _owner_gone(owned.group(1)):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        state = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _own_cgroup_dir() -> Path | None:
    """This process's cgroup v2 folder, or None (no cgroup2 mount, or cgroup v1 only)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    mount = next((line.split()[4] for line in mounts if " - cgroup2 " in line), None)
    if relative is None or mount is None:
        return None
    return Path(mount) / relative.lstrip("/")


# A cgroup this old and empty was left by a run that could not clean up (kill -9, --keep).
STALE_CGROUP_SECONDS = 60.0


def _remove_stale_cgroups(parent: Path) -> None:
    """Remove empty cgroups of earlier runs; recent ones may be about to receive their process."""
    with contextlib.suppress(OSError):
        for path in parent.glob("cmkit-*"):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > STALE_CGROUP_SECONDS and not (
                    (path / "cgroup.procs").read_text().strip()
                ):
                    path.rmdir()


def _signal_all(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class ProcessTracker:
    """Every process of one server: its cgroup (when one could be made) and its marker."""

    def __init__(self) -> None:
        self.marker = secrets.token_hex(8)
        self.cgroup = self._make_cgroup()

    @property
    def method(self) -> str:
        if self.cgroup is not None:
            return "cgroup"
        return "environment" if can_track() else "process-group"

    def _make_cgroup(self) -> Path | None:
        parent = _own_cgroup_dir()
        if parent is None:
            return None
        _remove_stale_cgroups(parent)
        path = parent / f"cmkit-{owner_id()}-{self.marker}"
        try:
            path.mkdir()
        except OSError:  # read-only hierarchy, no delegation: the marker is the net
            return None
        if not (path / "cgroup.procs").exists():
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return path

    def environment(self) -> dict[str, str]:
        return {MARKER: self.marker, OWNER: owner_id()}

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv`, started inside the cgroup when there is one."""
        if self.cgroup is None:
            return list(argv)
        return ["/bin/sh", "-c", _ENTER_CGROUP, "cmkit-cgroup", str(self.cgroup / "cgroup.procs"), *argv]

    def members(self) -> list[int]:
        """Live processes of the server, by cgroup and by marker."""
        pids = set(marked_processes(self.marker))
        if self.cgroup is not None:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in (self.cgroup / "cgroup.procs").read_text().split())
        pids.discard(os.getpid())
        return sorted(pids)

    def end(self, grace: float) -> None:
        """SIGTERM every member, then after `grace` seconds SIGKILL what is left."""
        _signal_all(self.members(), signal.SIGTERM)
        deadline = time.monotonic() + grace
        pause = pauses()
        while self.members() and time.monotonic() < deadline:
            time.sleep(next(pause))
        for _ in range(5):  # a few rounds: a process may fork between a scan and a signal
            alive = self.members()
            if not alive:
                return
            if self.cgroup is not None:
                with contextlib.suppress(OSError):
                    (self.cgroup / "cgroup.kill").write_text("1")  # Linux 5.14+
            _signal_all(alive, signal.SIGKILL)
            time.sleep(0.1)

    def close(self) -> None:
        """Remove the cgroup (it empties once its last process is reaped)."""
        if self.cgroup is None:
            return
        pause = pauses()
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # gone already, or not ours to remove: nothing to do
                    return
                time.sleep(next(pause))
