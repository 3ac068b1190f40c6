"""What a killed emulator leaves behind, ended at the next start (cmkit/emulator/leftovers.py), in-process.

Real processes carrying the data directory's marker, real temporaries and records in a real data
directory; `clean` is what a start runs before any job. A real `kill -9` of a served emulator is in
tests/emulator/test_leftovers_kill9.py (slow tier).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from cmkit.emulator import leftovers
from cmkit.emulator.jobs import DockerJobs, ProcessJobs, labels_for
from cmkit.emulator.service import Emulator, EmulatorSettings
from tests.support.emulator_support import TOKEN, wait_for

TEST_ONE, TEST_TWO = "0123456789abcdef01234567", "89abcdef0123456789abcdef"  # ids as the emulator makes them
# Ignored signals stay ignored across exec: the sleep keeps the shell's pid and ignores SIGTERM.
STUBBORN = 'trap "" TERM; echo ready; exec sleep 60'


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(EmulatorSettings(tmp_path / "data", (TOKEN,)), ProcessJobs())
    yield emu
    emu.stop()


def marked(emu: Emulator, test_id: str, command: list[str], leader: bool) -> subprocess.Popen[str]:
    environment = {**os.environ, leftovers.MARKER_ENV: leftovers.marker(emu, test_id)}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True, start_new_session=leader)
    # Popen returns once the child execs, but the kernel fills in /proc/<pid>/environ a moment
    # later: wait until the marker shows, as a later start finds a server left running.
    wait_for(lambda: process.pid in leftovers.marked_processes(f"{emu.digest}:"), 10)
    return process


def test_a_start_ends_marked_servers_and_clears_records_and_temporaries(core: Emulator) -> None:
    server = marked(core, TEST_ONE, ["sleep", "60"], leader=True)  # a server leading its process group
    try:
        record = leftovers.record(core, TEST_ONE, "process")
        assert record.is_file() and leftovers.marker(core, TEST_ONE) in record.read_text()
        (core.dir("tmp") / "partial-upload").write_bytes(b"half")
        (core.dir("tests", TEST_ONE) / "bundle").mkdir(parents=True)
        (core.dir("tmp") / "link").symlink_to(core.dir("tests"))
        assert server.pid in leftovers.marked_processes(f"{core.digest}:")
        cleaned = leftovers.clean(core)
        assert cleaned.processes == [server.pid] and cleaned.records == [TEST_ONE] and cleaned.containers == []
        assert server.wait(10) < 0  # ended by a signal
        assert list(core.dir("tmp").iterdir()) == [] and list(core.dir("tests").iterdir()) == []
        assert core.dir("tests").is_dir() and not record.exists()
    finally:
        server.kill()
        server.wait()


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(core: Emulator) -> None:
    stubborn = marked(core, TEST_TWO, ["sh", "-c", STUBBORN], leader=False)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
        assert leftovers.end_marked_processes(f"{core.digest}:{TEST_TWO}", grace=0.1) == [stubborn.pid]
        assert stubborn.wait(10) == -9
    finally:
        stubborn.kill()
        stubborn.wait()
    leftovers.forget(core, TEST_TWO)  # no record: nothing to remove, no error
    assert leftovers.marked_processes(f"{core.digest}:") == []


def test_containers_cannot_be_listed_without_an_engine_and_the_start_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path / 'no-engine.sock'}", version="1.41")
    emu = Emulator(EmulatorSettings(tmp_path / "data", (TOKEN,)), DockerJobs(client, labels_for(tmp_path, {})))
    try:
        assert leftovers.clean(emu).containers == []
    finally:
        emu.stop()
        client.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(message.startswith("could not list the previous run's containers") for message in warnings)
