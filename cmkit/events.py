"""Progress reporting from core code without printing: callers pass an `Events` subclass.

The CLI renders events with rich on stderr; the emulator writes them to a test's log.
"""

from __future__ import annotations

from typing import Any


class Events:
    """No-op base: override what you want to show."""

    def stage(self, text: str) -> None:
        """A step starts (building a layer, waiting for the server, running a check)."""

    def log(self, line: str) -> None:
        """A raw output line (build output)."""

    def check(self, name: str, result: Any) -> None:
        """A check ended with a `CheckResult`."""

    def progress(self, label: str, done: int, total: int) -> None:
        """Bytes or items done out of total (uploads)."""


class RecordingEvents(Events):
    """Keeps everything, for logs and tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage(self, text: str) -> None:
        self.lines.append(f"== {text}")

    def log(self, line: str) -> None:
        self.lines.append(line)

    def check(self, name: str, result: Any) -> None:
        self.lines.append(f"{name}: {result.status} {result.message}".rstrip())
