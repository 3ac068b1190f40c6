"""Paths that an upload or an archive names for its files: the one rule, for hostile input.

A member's path must stay inside the folder it is written to: relative, no `..` out of it, no
NUL byte or line break, bounded lengths, and no path that is a file and a folder at once. The
emulator applies it to model files and docker-context members (`cmkit.emulator.validation`
turns `UnsafePath` into its 422 answer); the docker-context unpacker (`cmkit.contexts`) to every
member before anything is written.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cmkit.errors import InputError

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


@dataclass
class UnsafePath(InputError):
    """A path refused: `message` names it; `reason` is what is wrong, for the field `field_name`."""

    field_name: str = "filePath"
    reason: str = ""


def member_path(raw: str, field_name: str = "filePath") -> str:
    """A relative path inside the model (or context), normalised; UnsafePath naming the problem."""

    def refuse(reason: str) -> UnsafePath:
        return UnsafePath(f"{field_name} {raw[:300]!r} {reason}", field_name=field_name, reason=reason)

    if any(c in raw for c in "\x00\n\r"):
        raise refuse("must not hold NUL bytes or line breaks")
    text = raw.replace("\\", "/").strip()
    if not text or text.startswith("/") or re.match(r"[A-Za-z]:/", text):
        raise refuse("must be a relative path")
    path = posixpath.normpath(text)
    if path in (".", "..") or path.startswith("../"):
        raise refuse("leaves the model folder")
    encoded = path.encode("utf-8", errors="surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise refuse(f"is longer than {MAX_PATH_BYTES} bytes")
    if any(len(part.encode("utf-8", errors="surrogateescape")) > MAX_COMPONENT_BYTES for part in path.split("/")):
        raise refuse(f"has a component longer than {MAX_COMPONENT_BYTES} bytes")
    return path


def check_path_set(paths: Iterable[str], field_name: str = "filePath") -> None:
    """UnsafePath when one path is a file and a folder at once (`a` and `a/b`)."""
    files = set(paths)
    for path in sorted(files):
        parent = posixpath.dirname(path)
        while parent:
            if parent in files:
                reason = f"{parent!r} is a file, so {path!r} cannot be inside it"
                raise UnsafePath(f"{field_name} clash: {reason}", field_name=field_name, reason=reason)
            parent = posixpath.dirname(parent)
