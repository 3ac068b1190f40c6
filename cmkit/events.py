"""Progress reporting from core code without printing: callers pass an `Events` subclass.

The CLI renders events with rich on stderr (a live bar on a terminal, plain lines otherwise);
the emulator writes them to a test's log. The adapters at the end turn what the libraries
report (upload byte counts, docker build output, polled build states) into events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

BYTES = "bytes"
STEPS = "steps"
ITEMS = "items"  # things counted, not bytes (feature impact's features)
# total == 0 means "no known end" (a remote build being polled): a spinner and the time elapsed.
WAITING = "waiting"


class Events:
    """No-op base: override what you want to show."""

    def stage(self, text: str) -> None:
        """A step starts (building a layer, waiting for the server, running a check)."""

    def log(self, line: str) -> None:
        """A raw output line (build output)."""

    def step(self, label: str, number: int, total: int, text: str) -> None:
        """Step `number` of `total` of the activity `label` starts (a docker build's instruction `text`).

        By default a progress event: `number - 1` steps are done.
        """
        self.progress(label, number - 1, total, STEPS)

    def check_started(self, name: str) -> None:
        """A check starts running (its end is `check`)."""
        self.stage(f"running {name}")

    def check(self, name: str, result: Any) -> None:
        """A check ended with a `CheckResult`."""

    def progress(self, label: str, done: int, total: int, unit: str = BYTES) -> None:
        """`done` out of `total` `unit`s for the activity `label` (uploads, build steps, waits)."""


class RecordingEvents(Events):
    """Keeps everything, for logs and tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.progressed: list[tuple[str, int, int, str]] = []

    def stage(self, text: str) -> None:
        self.lines.append(f"== {text}")

    def log(self, line: str) -> None:
        self.lines.append(line)

    def check(self, name: str, result: Any) -> None:
        self.lines.append(f"{name}: {result.status} {result.message}".rstrip())

    def progress(self, label: str, done: int, total: int, unit: str = BYTES) -> None:
        self.progressed.append((label, done, total, unit))


def upload_progress(events: Events, label: str, total: int) -> Callable[[int], None]:
    """A callback for byte counts sent so far (requests-toolbelt's monitor) -> progress events."""
    done = 0

    def sent(chunk: int) -> None:
        nonlocal done
        done += chunk
        events.progress(label, min(done, total), total, BYTES)

    return sent


# The legacy builder announces each instruction as "Step 3/7 : RUN ...".
_BUILD_STEP = re.compile(r"^Step (\d+)/(\d+) : ")


def build_log(events: Events, label: str = "docker build") -> Callable[[str], None]:
    """A docker build's output lines -> `log` events, and its `Step N/M : INSTRUCTION` lines -> `step`."""

    def line(text: str) -> None:
        events.log(text)
        step = _BUILD_STEP.match(text)
        if step:
            # Step N starting means N-1 are done; the next stage event ends the step.
            events.step(label, int(step[1]), int(step[2]), text[step.end() :].strip())

    return line


def status_waiter(events: Events, what: str, key: str = "buildStatus") -> Callable[[Mapping[str, Any]], None]:
    """An `on_wait` for polling a remote build: a stage line when its status changes, else a tick."""
    last: list[object] = [object()]

    def waiting(resource: Mapping[str, Any]) -> None:
        status = resource.get(key)
        if status != last[0]:
            last[0] = status
            events.stage(f"{what}: {status}")
        events.progress(what, 0, 0, WAITING)

    return waiting
