"""cmkit/cli.py through click's CliRunner: test-local, serve and their --watch, errors (fast tier).

Real files in tmp_path and real process-runtime servers (write_quick_bundle, tests/support/bundles.py).
A watch is ended as a user ends it: SIGTERM, which the commands turn into Ctrl-C, sent once the first
JSON line is out. stdout holds the `--json` documents, stderr the human rendering (not a TTY
here: plain lines).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cmkit.cli import main
from cmkit.errors import InputError
from tests.support.bundles import write_quick_bundle

FAST = ["--runtime", "process", "--check", "sideEffects=skip", "--check", "nullValueImputation=skip"]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_quick_bundle(tmp_path / "bundle")


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    """The commands turn SIGTERM into KeyboardInterrupt for this process: undo it afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


class Interrupter:
    """SIGTERM this process once the running command wrote its first line on stdout (CliRunner's).

    `done()` after the command: a command that ended without that line is never signalled late.
    """

    def __init__(self) -> None:
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-interrupt", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self._finished.is_set():
            stdout = sys.stdout  # CliRunner's own stream while the command runs, and only then
            if type(stdout).__name__ == "_NamedTextIOWrapper" and b"\n" in stdout.buffer.getvalue():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)

    def done(self) -> None:
        self._finished.set()
        self._thread.join(10)


# --- test-local ---------------------------------------------------------------------------------


def test_test_local_prints_one_json_document_and_writes_junit(
    bundle: Path, tmp_path: Path, sigterm_restored: None
) -> None:
    junit = tmp_path / "out" / "report.xml"
    junit.parent.mkdir()
    result = invoke("test-local", str(bundle), *FAST, "--json", "--junit", str(junit))
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["overallStatus"] == "succeeded"
    assert document["testingStatus"]["sideEffects"] == {"status": "skipped", "message": "skipped by configuration"}
    assert document["details"]["runtime"] == "process"
    xml = junit.read_text()
    assert xml.count("<testcase ") == 7 and 'name="errorCheck"' in xml and "<failure" not in xml
    assert "overall: succeeded" in result.stderr and "> " in result.stderr  # the table and progress, on stderr


def test_test_local_exits_1_when_a_check_fails_and_shows_the_log(bundle: Path, sigterm_restored: None) -> None:
    (bundle / "behaviour.txt").write_text("broken\n")
    result = invoke("test-local", str(bundle), *FAST)
    assert result.exit_code == 1
    assert result.stdout == ""  # without --json nothing goes to stdout
    assert "errorCheck" in result.stderr and "broken on purpose" in result.stderr
    # The one-line diagnosis, and the whole log in the file it names (issue 26).
    assert "overall: failed" in result.stderr and "predict-error: the model fails on the test data" in result.stderr
    log_file = result.stderr.split("(whole log: ", 1)[1].split(")", 1)[0]
    assert Path(log_file).is_file()


def test_bad_input_is_one_line_exit_2_and_a_json_error_document(tmp_path: Path, sigterm_restored: None) -> None:
    missing = tmp_path / "nowhere"
    result = invoke("test-local", str(missing), "--json")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {missing}: not a bundle folder (pass the folder holding start_server.sh)"
    ]
    error = json.loads(result.stdout)["error"]
    assert error["file"] == str(missing) and error["hint"] == "pass the folder holding start_server.sh"


def test_debug_shows_the_traceback(tmp_path: Path, sigterm_restored: None) -> None:
    result = invoke("test-local", str(tmp_path / "nowhere"), "--debug")
    assert isinstance(result.exception, InputError)
    assert result.exit_code == 1  # click's exit for an uncaught exception: the traceback is the output


def test_test_local_watch_reports_each_run_as_a_json_line_until_interrupted(
    bundle: Path, tmp_path: Path, sigterm_restored: None
) -> None:
    junit = tmp_path / "watch.xml"
    interrupter = Interrupter()
    try:
        result = invoke("test-local", str(bundle), *FAST, "--watch", "--json", "--junit", str(junit))
    finally:
        interrupter.done()
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout.splitlines()[0])
    assert run["overallStatus"] == "succeeded" and run["details"]["watch"]["action"] == "started"
    assert junit.is_file()
    assert f"watching {bundle}" in result.stderr and "stopped watching; removed the server it started" in result.stderr


# --- serve --------------------------------------------------------------------------------------


def test_serve_prints_where_it_serves_and_exits_1_when_the_server_dies(bundle: Path, sigterm_restored: None) -> None:
    (bundle / "behaviour.txt").write_text("exit_after_ready\n")
    result = invoke("serve", str(bundle), "--runtime", "process", "--url-prefix", "/m", "--json")
    assert result.exit_code == 1, result.stderr
    info = json.loads(result.stdout)
    assert info["url"].endswith("/m/") and info["urlPrefix"] == "/m" and info["runtime"] == "process"
    assert info["protocol"]["name"] == "predict_no_state"
    assert f"serving {info['url']}" in result.stderr
    assert "exiting: exit_after_ready" in result.stderr  # the server's log, streamed


def test_serve_watch_says_when_it_serves_until_interrupted(bundle: Path, sigterm_restored: None) -> None:
    interrupter = Interrupter()
    try:
        result = invoke("serve", str(bundle), "--runtime", "process", "--url-prefix", "/w", "--watch", "--json")
    finally:
        interrupter.done()
    assert result.exit_code == 0, result.stderr
    ready = json.loads(result.stdout.splitlines()[0])
    assert ready["ready"] and ready["url"].endswith("/w/") and ready["watch"]["action"] == "started"
    assert "serving " in result.stderr and "stopping" in result.stderr
