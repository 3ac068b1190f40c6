"""Reading the small text files a user points cmkit at (requirements, metadata, configuration).

Only regular files are read, and only up to a cap: `/dev/zero` would otherwise grow without end,
a FIFO would block forever, and a symlink loop or a folder we may not enter would surface as a
traceback. Every such case is one InputError naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cmkit.errors import InputError


def stat_or_none(path: Path) -> os.stat_result | None:
    """The file's status (symlinks followed); None when it does not exist; InputError otherwise."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise InputError("broken symlink", file=path, hint="point it at a file or remove it") from None
        return None
    except OSError as exc:  # ELOOP, EACCES...
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from exc


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; InputError for anything else."""
    info = stat_or_none(path)
    if info is None:
        raise InputError("no such file", file=path, hint="check the path")
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file", file=path, hint="pass a plain text file")
    if info.st_size > max_bytes:
        raise InputError(f"{info.st_size} bytes is over the {max_bytes}-byte limit for this file", file=path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from exc
    if len(data) > max_bytes:  # it grew after the stat
        raise InputError(f"over the {max_bytes}-byte limit for this file", file=path)
    return data


def read_utf8(path: Path, max_bytes: int) -> str:
    """A regular UTF-8 text file of at most `max_bytes` (a BOM is dropped)."""
    data = read_limited(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", file=path, line=line, hint="save the file as UTF-8"
        ) from exc


def check_writable(path: Path) -> None:
    """Fail now, with one line, if `path` cannot be written later (a report written after a long run)."""
    existed = os.path.lexists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", file=path, hint="choose a writable path") from exc
    if not existed:
        os.unlink(path)
