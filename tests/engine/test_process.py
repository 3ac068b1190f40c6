"""cmkit/engine/process.py on real bundles whose start_server.sh is a few lines of shell: what the
server is given (and not given), its log, its exit, and `stop()` ending every process it started,
including one that left its process group. A model server that loads a model is the slow tier's
(tests/testlocal/test_process.py)."""

from __future__ import annotations

import errno
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmkit.engine.base import RunSpec
from cmkit.engine.process import MAX_LOG_BYTES, ProcessServer, server_command, start_process
from cmkit.errors import InputError
from tests.support.bundles import write_static_bundle

# Prints what it was given, starts a process that leaves the group (a daemonizing server's
# child), then ticks until it is stopped.
TICKING = """\
#!/bin/sh
echo "port=$PORT prefix=$URL_PREFIX code=$CODE_DIR token=${DATAROBOT_API_TOKEN:-none}"
python -c "import os, time; os.setsid(); print('escaped', os.getpid(), flush=True); time.sleep(30)" &
while :; do echo tick; sleep 0.05; done
"""


@pytest.fixture
def ticking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcessServer]:
    monkeypatch.setenv("DATAROBOT_API_TOKEN", "secret-token-of-the-host")
    server = start_process(write_static_bundle(tmp_path / "m", TICKING), RunSpec(url_prefix="/p/q"))
    yield server
    server.stop()


def wait_for_log(server: ProcessServer, text: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while text not in server.logs(None) and time.monotonic() < deadline:
        assert server.exit_info() is None, server.logs(None)
        time.sleep(0.02)
    return server.logs(None)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by whatever init this machine has, maybe never)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_the_server_gets_the_contract_but_not_the_hosts_token(ticking: ProcessServer, tmp_path: Path) -> None:
    log = wait_for_log(ticking, "tick")
    bundle = (tmp_path / "m").resolve()
    assert f"port={ticking.port} prefix=/p/q code={bundle} token=none" in log
    assert "secret-token-of-the-host" not in log
    assert ticking.exit_info() is None and ticking.host_port == ticking.port
    assert ticking.describe() == {"runtime": "process", "pid": ticking.process.pid, "url": ticking.url}
    assert ticking.url == f"http://127.0.0.1:{ticking.port}/p/q"


def test_follow_logs_yields_the_lines_written_from_now_on(ticking: ProcessServer) -> None:
    wait_for_log(ticking, "escaped")  # the one line that is not a tick
    lines = ticking.follow_logs()
    assert next(lines) == "tick"  # a new line: what came before is not replayed
    lines.close()


def test_stop_ends_the_whole_tree_even_what_left_the_group(ticking: ProcessServer) -> None:
    log = wait_for_log(ticking, "escaped")
    escaped = int(log.split("escaped ", 1)[1].split()[0])
    assert escaped in ticking.tracker.members()
    ticking.stop()
    assert not running(escaped)
    leftovers = ticking.leftovers()
    assert leftovers is not None and leftovers["escaped"] == [escaped] and leftovers["survived"] == []
    assert leftovers["tracking"] == ticking.tracker.method
    exit_info = ticking.exit_info()
    assert exit_info is not None and exit_info.exit_code == -signal.SIGTERM
    # The log file was the run's: removed, its text kept for the report; following it ends at once.
    assert not ticking.log_path.exists() and "escaped" in ticking.logs(None)
    lines = ticking.logs(None).splitlines()
    assert ticking.logs(tail=2) == "\n".join(lines[-2:]) and ticking.logs() == "\n".join(lines[-50:])
    assert list(ticking.follow_logs()) == []
    ticking.stop()  # idempotent
    assert ticking.leftovers() == leftovers


def test_a_server_that_exits_at_start_reports_its_code_and_its_words(tmp_path: Path) -> None:
    bundle = write_static_bundle(tmp_path, "#!/bin/sh\necho 'cannot find model.pkl' >&2\nexit 3\n")
    server = start_process(bundle, RunSpec(url_prefix="/"))
    try:
        server.process.wait(timeout=10)
        assert list(server.follow_logs()) == []  # nothing new, and the process has ended: the follow ends
        exit_info = server.exit_info()
        assert exit_info is not None and exit_info.describe() == "exited with code 3"
        assert server.logs() == "cannot find model.pkl"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("script", "mode", "code"),
    [
        ("#!/bin/sh\necho hi\n", 0o644, errno.EACCES),  # not executable
        ("echo hi\n", 0o755, errno.ENOEXEC),  # no shebang: DataRobot does not run it through a shell either
    ],
)
def test_a_start_script_that_cannot_be_executed_fails_as_popen_reports_it(
    tmp_path: Path, script: str, mode: int, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_static_bundle(tmp_path / "m", script, mode=mode)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    with pytest.raises(OSError) as raised:
        start_process(bundle, RunSpec(url_prefix="/"))
    assert raised.value.errno == code
    assert list(temporary.iterdir()) == []  # the server log it had opened is gone with it


def test_without_a_start_script_the_installed_runtime_serves_the_bundle(tmp_path: Path) -> None:
    assert server_command(tmp_path) == [sys.executable, "-m", "cmkit_runtime", "serve", "--code-dir", str(tmp_path)]
    write_static_bundle(tmp_path, "#!/bin/sh\n")
    assert server_command(tmp_path) == [str(tmp_path / "start_server.sh")]


def test_a_missing_bundle_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a bundle folder"):
        start_process(tmp_path / "absent", RunSpec(url_prefix="/"))


def test_only_the_end_of_a_huge_log_is_read(tmp_path: Path) -> None:
    """Issue 27 item 7: a model printing 200 MiB made cmkit read it all (913 MiB of memory). The
    report needs its end: at most MAX_LOG_BYTES of it, from a whole line, is read, during the run
    and after the stop."""
    script = "#!/bin/sh\nyes 'a line of model output' | head -c 23000000\necho 'the last words'\nexit 1\n"
    server = start_process(write_static_bundle(tmp_path, script), RunSpec(url_prefix="/"))
    try:
        server.process.wait(timeout=30)
        for text in (server.logs(None), (server.stop(), server.logs(None))[1]):
            assert len(text.encode()) <= MAX_LOG_BYTES and text.endswith("the last words\n")
            assert text.startswith("a line of model output\n")
        assert server.logs(2) == "a line of model output\nthe last words"
    finally:
        server.stop()


def test_the_contracts_files_are_written_for_the_server_and_removed_at_stop(tmp_path: Path) -> None:
    script = '#!/bin/sh\necho "labels from $CLASS_LABELS_FILE:"; cat "$CLASS_LABELS_FILE"; sleep 30\n'
    spec = RunSpec(url_prefix="/", contract_files={"CLASS_LABELS_FILE": "Iris setosa\nvirginica\n"})
    server = start_process(write_static_bundle(tmp_path / "m", script), spec)
    try:
        log = wait_for_log(server, "virginica")
        assert server.files_dir is not None
        assert f"labels from {server.files_dir}/CLASS_LABELS_FILE:\nIris setosa\nvirginica" in log
    finally:
        server.stop()
    assert not server.files_dir.exists()
