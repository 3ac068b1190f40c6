"""cmkit/engine/processtree.py on real short processes: a run's processes are found by their
marker (and by their cgroup where one can be made), zombies and strangers are not, and `end`
ends even the ones that ignore SIGTERM."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmkit.engine import processtree
from cmkit.engine.processtree import MARKER, ProcessTracker, marked_processes

# A shell that ignores SIGTERM, as does its sleep (ignored signals survive exec).
STUBBORN = "trap '' TERM; echo ready; while :; do sleep 0.05; done"


@pytest.fixture
def tracker() -> Iterator[ProcessTracker]:
    made = ProcessTracker()
    yield made
    made.end(0.0)
    made.close()


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={"PATH": os.environ["PATH"], **(env or {})}, stdout=subprocess.PIPE)


def wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_marked_processes_are_the_live_carriers_of_the_marker() -> None:
    assert processtree.can_track()  # Linux: /proc holds every process's environment
    value = "test-" + os.urandom(4).hex()
    marked = spawn(["sleep", "30"], {MARKER: value})
    other = spawn(["sleep", "30"], {MARKER: value + "-other"})
    zombie = spawn(["true"], {MARKER: value})
    wait_for(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    try:
        assert marked_processes(value) == [marked.pid]  # not the other run's, not the unreaped one
    finally:
        for process in (marked, other, zombie):
            process.kill()
            process.wait()
    assert marked_processes(value) == []


def test_end_kills_what_ignores_sigterm_after_the_grace(tracker: ProcessTracker) -> None:
    process = spawn(tracker.command(["/bin/sh", "-c", STUBBORN]), tracker.environment())
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    wait_for(lambda: len(tracker.members()) >= 2)  # the shell and its sleep
    assert process.pid in tracker.members()
    started = time.monotonic()
    tracker.end(0.05)
    assert process.wait(timeout=5) == -9
    assert tracker.members() == [] and 0.05 <= time.monotonic() - started < 3


def test_a_process_that_drops_the_marker_is_still_found_by_its_cgroup(tracker: ProcessTracker) -> None:
    argv = ["env", "-i", "/bin/sh", "-c", "echo ready; exec sleep 30"]  # a fresh environment: no marker
    process = spawn(tracker.command(argv), tracker.environment())
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    if tracker.cgroup is None:
        # No writable cgroup2 here: the marker is the only net, and `env -i` slips through it (README).
        assert tracker.method in ("environment", "process-group") and tracker.command(argv) == argv
        assert tracker.members() == []
        process.kill()
    else:
        assert tracker.method == "cgroup" and tracker.command(argv)[-len(argv) :] == argv
        assert tracker.members() == [process.pid]
        assert str(tracker.cgroup.name) in Path(f"/proc/{process.pid}/cgroup").read_text()
        tracker.end(1.0)
    process.wait(timeout=5)
    assert tracker.members() == []
    cgroup = tracker.cgroup
    tracker.close()
    assert cgroup is None or not cgroup.exists()


def test_a_new_tracker_removes_old_empty_cgroups_but_not_recent_ones(tracker: ProcessTracker) -> None:
    if tracker.cgroup is None:
        assert tracker.method != "cgroup"
        return
    parent = tracker.cgroup.parent
    stale, recent = parent / "cmkit-test-stale", parent / "cmkit-test-recent"
    for path in (stale, recent):
        path.mkdir()
    old = time.time() - processtree.STALE_CGROUP_SECONDS - 10
    os.utime(stale, (old, old))
    try:
        second = ProcessTracker()
        second.close()
        assert not stale.exists() and recent.exists()
        assert tracker.cgroup.exists(), "a live run's cgroup is not stale"
    finally:
        for path in (stale, recent):
            if path.exists():
                path.rmdir()


def test_a_start_sweeps_what_a_killed_cmkit_left_and_nothing_else() -> None:
    """Issue 27 item 8: SIGKILL of `test-local --runtime process` while the model loaded left its
    processes running forever; the next start now ends those whose owner is gone (pid and start
    time: a reused pid is not the owner), and leaves a live owner's server alone."""
    dead_owner = spawn(["true"])
    dead_owner.wait()
    orphan = spawn(["sh", "-c", STUBBORN], {processtree.OWNER: f"{dead_owner.pid}.1"})
    kept = spawn(["sh", "-c", STUBBORN], {processtree.OWNER: processtree.owner_id()})
    try:
        for process in (orphan, kept):
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        swept = processtree.sweep_leftovers(grace=0.2)  # the shell and its sleep of the moment
        assert orphan.pid in swept and kept.pid not in swept
        assert orphan.wait(timeout=5) == -9  # it ignored SIGTERM: SIGKILL after the grace
        assert kept.poll() is None
    finally:
        for process in (orphan, kept):
            process.kill()
            process.wait()


def test_a_start_removes_the_logs_and_contract_files_a_killed_cmkit_left_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead_owner = spawn(["true"])
    dead_owner.wait()
    dead = f"{dead_owner.pid}.1"
    left = [tmp_path / f"cmkit-server-{dead}-ab_c.log", tmp_path / f"cmkit-contract-{dead}-x1"]
    left[0].write_text("the killed run's model output")
    left[1].mkdir()
    (left[1] / "runtime-parameters.yaml").write_text("A: 1")
    kept = [
        Path(tempfile.mkstemp(prefix=processtree.owned_prefix(processtree.SERVER_LOG_PREFIX), suffix=".log")[1]),
        Path(tempfile.mkdtemp(prefix=processtree.owned_prefix(processtree.CONTRACT_PREFIX))),
        tmp_path / "cmkit-server-older-format.log",  # whose owner is unknown: not ours to judge
        tmp_path / f"other-{dead}-file",
    ]
    for path in kept[2:]:
        path.write_text("x")
    processtree.sweep_leftovers(grace=0.2)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
