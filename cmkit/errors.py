"""Errors that core modules raise and the CLI turns into exit codes.

Core code never prints: it raises one of these, and `cmkit.cli` renders the one-line message
(exit 2 for bad input, 3 for a missing Docker engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CmkitError(Exception):
    """Base class: a message a user can act on, with an optional location and hint."""

    message: str
    file: str | Path | None = None
    line: int | None = None
    hint: str | None = None
    exit_code: int = field(default=1, repr=False)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "file": str(self.file) if self.file is not None else None,
            "line": self.line,
            "hint": self.hint,
        }


@dataclass
class InputError(CmkitError):
    """The user gave us something unusable: a missing file, an unreadable CSV, a bad flag value."""

    exit_code: int = field(default=2, repr=False)


@dataclass
class DockerUnavailable(CmkitError):
    """A Docker engine was required but does not answer."""

    exit_code: int = field(default=3, repr=False)
