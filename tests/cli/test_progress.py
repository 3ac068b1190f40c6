"""Progress events on the console: rich bars on a real terminal (a pty), plain lines otherwise."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cmkit.cli import main
from cmkit.events import RecordingEvents, build_log, status_waiter, upload_progress
from cmkit.render import ConsoleEvents
from tests.support.bundles import write_flask_bundle
from tests.support.emulator_support import TOKEN, Emulator

BAR = "━"  # what rich draws bars with
STEPS = ["Step 1/3 : FROM python:3.11-slim", " ---> 0123456789ab", "Step 2/3 : COPY . /x", "Step 3/3 : LABEL a=b"]


class Terminal:
    """A real pseudo-terminal: rich writes to its slave side, a thread drains the master."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave side is closed
                return
            if not data:
                return
            self.chunks.append(data)

    def raw(self) -> str:
        self.reader.join(timeout=30)
        os.close(self.master)
        return b"".join(self.chunks).decode(errors="replace")

    def text(self) -> str:
        """What was written, without colours and cursor moves."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.raw())


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    yield Terminal()


def console_on(terminal: Terminal) -> tuple[Console, io.TextIOWrapper]:
    stream = open(terminal.slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 - closed by the test
    return Console(file=stream, width=100, force_interactive=True), stream


# --- the adapters -------------------------------------------------------------------------------


def test_adapters_turn_library_callbacks_into_progress_events() -> None:
    events = RecordingEvents()
    sent = upload_progress(events, "uploading", 100)
    for chunk in (40, 40, 40):  # the monitor may count multipart framing past the file bytes
        sent(chunk)
    line = build_log(events, "building")
    for text in STEPS:
        line(text)
    waiting = status_waiter(events, "dependency build")
    for status in ("submitted", "processing", "processing"):
        waiting({"buildStatus": status})
    assert events.progressed == [
        ("uploading", 40, 100, "bytes"),
        ("uploading", 80, 100, "bytes"),
        ("uploading", 100, 100, "bytes"),
        ("building", 0, 3, "steps"),
        ("building", 1, 3, "steps"),
        ("building", 2, 3, "steps"),
        ("dependency build", 0, 0, "waiting"),
        ("dependency build", 0, 0, "waiting"),
        ("dependency build", 0, 0, "waiting"),
    ]
    assert STEPS[1] in events.lines  # every build line is still logged
    assert [line for line in events.lines if line.startswith("==")] == [
        "== dependency build: submitted",
        "== dependency build: processing",
    ]


# --- plain lines (stderr is not a terminal) -----------------------------------------------------


def test_plain_lines_report_each_quarter_once() -> None:
    buffer = io.StringIO()
    with ConsoleEvents(out=Console(file=buffer, width=200)) as events:
        sent = upload_progress(events, "uploading", 4 * 1024 * 1024)
        for _ in range(64):
            sent(64 * 1024)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "  uploading: 64.0 KiB of 4.0 MiB (0%)",
        "  uploading: 1.0 MiB of 4.0 MiB (25%)",
        "  uploading: 2.0 MiB of 4.0 MiB (50%)",
        "  uploading: 3.0 MiB of 4.0 MiB (75%)",
        "  uploading: 4.0 MiB of 4.0 MiB (100%)",
    ]
    assert BAR not in buffer.getvalue() and "\x1b" not in buffer.getvalue()


def test_plain_build_steps_print_once_when_the_build_output_is_hidden() -> None:
    shown, hidden = io.StringIO(), io.StringIO()
    for buffer, show in ((shown, True), (hidden, False)):
        with ConsoleEvents(show_build_output=show, out=Console(file=buffer, width=200)) as events:
            line = build_log(events, "building")
            for text in STEPS:
                line(text)
    # With the output shown its own "Step N/M" lines say it; hidden (--json), one line a step.
    assert shown.getvalue().count("Step 2/3") == 1 and "step 2/3" not in shown.getvalue()
    assert hidden.getvalue().splitlines() == ["  building: step 1/3", "  building: step 2/3", "  building: step 3/3"]


# --- a real terminal ----------------------------------------------------------------------------


def test_terminal_upload_bar_shows_sizes_and_stays_after_the_upload(terminal: Terminal) -> None:
    out, stream = console_on(terminal)
    assert out.is_terminal
    with ConsoleEvents(out=out) as events:
        sent = upload_progress(events, "uploading", 3 * 1024 * 1024)
        for _ in range(48):
            sent(64 * 1024)
        events.stage("dependency build: submitted")
    stream.close()
    text = terminal.text()
    assert BAR in text and "uploading" in text
    assert "3.0/3.0 MiB" in text  # the final state of the bar is left on the screen
    assert "dependency build: submitted" in text
    assert "  uploading: " not in text  # no plain lines on a terminal


def test_terminal_build_steps_are_one_line_each_with_their_time(terminal: Terminal) -> None:
    out, stream = console_on(terminal)
    with ConsoleEvents(out=out) as events:  # the build output is hidden on a terminal without --verbose
        line = build_log(events, "building")
        for text in STEPS:
            line(text)
        events.stage("starting cmkit-code:abc")
        waiting = status_waiter(events, "dependency build")
        waiting({"buildStatus": "processing"})
    stream.close()
    raw = terminal.raw()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    finished = re.findall(r"  · (building \d/3: [^\r\n]*?) \d+\.\ds", text)
    assert finished == ["building 1/3: FROM python:3.11-slim", "building 2/3: COPY . /x", "building 3/3: LABEL a=b"]
    assert "0123456789ab" not in text  # the raw output ("---> id") is not shown
    assert "steps" not in text and BAR not in text  # no "2/3 steps" bar while step 3 runs
    assert "starting cmkit-code:abc" in text and "dependency build: processing" in text
    assert raw.count("\x1b[?25l") == raw.count("\x1b[?25h")  # each spinner gives the cursor back


def test_verbose_shows_the_build_output_on_a_terminal(terminal: Terminal) -> None:
    out, stream = console_on(terminal)
    with ConsoleEvents(out=out, verbose=True) as events:
        line = build_log(events, "building")
        for text in STEPS:
            line(text)
    stream.close()
    assert "0123456789ab" in terminal.text()


def test_checks_are_a_passing_spinner_on_a_terminal_and_a_line_each_otherwise(terminal: Terminal) -> None:
    from cmkit.checks.results import CheckResult

    out, stream = console_on(terminal)
    with ConsoleEvents(out=out) as events:
        events.check_started("errorCheck")
        events.check("errorCheck", CheckResult("succeeded", "200 for 10 rows"))
    stream.close()
    text = terminal.text()
    assert "running errorCheck" in text and "200 for 10 rows" not in text  # the table shows it, once
    buffer = io.StringIO()
    with ConsoleEvents(out=Console(file=buffer, width=200)) as events:
        events.check_started("errorCheck")
        events.check("errorCheck", CheckResult("succeeded", "200 for 10 rows"))
    assert buffer.getvalue().splitlines() == ["> running errorCheck", "  errorCheck: succeeded 200 for 10 rows"]


# --- end to end: `cmkit push` against the emulator ----------------------------------------------


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATAROBOT_CONFIG_FILE", str(tmp_path / "no-such-drconfig.yaml"))
    emu = Emulator(tmp_path / "emulator-data").start()
    yield emu
    emu.stop()


def big_bundle(root: Path) -> Path:
    bundle = write_flask_bundle(root, requirements="six==1.16.0\n")
    (bundle / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return bundle


def push_arguments(emulator: Emulator, bundle: Path) -> list[str]:
    return [
        *("push", str(bundle), "--endpoint", emulator.endpoint, "--token", TOKEN, "--json"),
        *("--environment-id", emulator.info["environmentId"]),
    ]


@pytest.mark.slow
def test_push_prints_plain_upload_lines_when_stderr_is_not_a_terminal(emulator: Emulator, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, push_arguments(emulator, big_bundle(tmp_path / "bundle")))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["buildStatus"] == "success"
    uploads = [line for line in result.stderr.splitlines() if line.startswith("  uploading: ")]
    assert uploads[0].endswith("(0%)") and uploads[-1].endswith("(100%)") and len(uploads) == 5
    assert "MiB of 3." in uploads[-1]
    assert BAR not in result.stderr


@pytest.mark.slow
def test_push_draws_a_bar_on_a_terminal(emulator: Emulator, tmp_path: Path, terminal: Terminal) -> None:
    bundle = big_bundle(tmp_path / "bundle")
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    environment.pop("NO_COLOR", None)
    process = subprocess.run(
        [sys.executable, "-m", "cmkit", *push_arguments(emulator, bundle)],
        stdout=subprocess.PIPE,
        stderr=terminal.slave,
        env=environment,
        timeout=300,
    )
    os.close(terminal.slave)
    text = terminal.text()
    assert process.returncode == 0, text
    assert json.loads(process.stdout)["filesUploaded"] >= 1  # stdout stays one JSON document
    assert BAR in text and "uploading" in text and "MiB" in text
    assert "  uploading: " not in text


@pytest.mark.slow
@pytest.mark.docker
def test_test_local_draws_a_build_bar_on_a_terminal(docker_client: object, tmp_path: Path, terminal: Terminal) -> None:
    from tests.conftest import TEST_LABEL, TEST_RUN_ID

    bundle = write_flask_bundle(tmp_path / "bundle")  # a fresh folder's code layer is always built
    (bundle / "app.py").write_text((bundle / "app.py").read_text() + f"# {TEST_RUN_ID} {tmp_path.name}\n")
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    environment.pop("NO_COLOR", None)
    process = subprocess.run(
        [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--json", "--label", f"{TEST_LABEL}={TEST_RUN_ID}"],
        stdout=subprocess.PIPE,
        stderr=terminal.slave,
        env=environment,
        timeout=900,
    )
    os.close(terminal.slave)
    text = terminal.text()
    assert process.returncode == 0, text
    assert json.loads(process.stdout)["details"]["image"]["code"]["cached"] is False
    assert re.search(r"· building \d+/\d+: \S.* \d+\.\ds", text)  # one line per build step, with its time


def test_counted_progress_is_not_shown_as_bytes(terminal: Terminal) -> None:
    from cmkit.events import ITEMS

    out, stream = console_on(terminal)
    with ConsoleEvents(out=out) as events:
        for done in range(11):
            events.progress("feature impact", done, 10, ITEMS)
    stream.close()
    text = terminal.text()
    assert "10/10" in text and "bytes" not in text and "/s" not in text
    buffer = io.StringIO()
    with ConsoleEvents(out=Console(file=buffer, width=200)) as events:
        for done in range(11):
            events.progress("feature impact", done, 10, ITEMS)
    assert buffer.getvalue().splitlines()[-1] == "  feature impact: 10 of 10 (100%)"
