"""Unpacking an uploaded or downloaded docker context (zip or tar.gz), checked before anything is written.

The one safe unpacker of docker contexts: the emulator unpacks environment uploads with it and
`cmkit test-local --environment-id` (cmkit.remoteenv) the contexts it downloads. It imports no
emulator state (`service`), so the client side can use it without pulling the emulator in.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path

from cmkit.emulator.errors import ErrorResponse, invalid
from cmkit.emulator.validation import Limits, check_file_path, check_path_set


class ContextTooLarge(ErrorResponse):
    def __init__(self, message: str) -> None:
        super().__init__(413, f"Invalid docker context: {message}", {"dockerContext": message})


def extract_context(archive: Path, target: Path, limits: Limits | None = None) -> None:
    """Unpack a zip or tar(.gz) docker context into `target`.

    Every member's path, the member count and the extracted size are checked before anything
    is written: ErrorResponse 422 for a bad path, 413 past a cap; ValueError when the archive is
    neither format or lacks a top-level Dockerfile.
    """
    limits = limits or Limits()
    with archive.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK"):
        _extract_zip(archive, target, limits)
    else:
        _extract_tar(archive, target, limits)
    if not (target / "Dockerfile").is_file():
        raise ValueError("the archive has no top-level Dockerfile")


def _check_members(members: list[tuple[str, bool, int]], limits: Limits) -> None:
    """(name, is_dir, size) of every member: paths as for model files, then the caps."""
    if len(members) > limits.context_members:
        raise ContextTooLarge(f"it holds more than {limits.context_members} files and folders")
    files, folders, total = [], set(), 0
    for name, is_dir, size in members:
        path = check_file_path(name.rstrip("/") if is_dir else name, "dockerContext")
        if is_dir:
            folders.add(path)
        else:
            files.append(path)
            total += size
    if total > limits.context_bytes:
        raise ContextTooLarge(f"it unpacks to more than {limits.context_bytes} bytes")
    clash = folders.intersection(files)
    if clash:
        raise invalid(f"Invalid docker context: {min(clash)!r} is a file and a folder", {"dockerContext": "clash"})
    check_path_set(files, "dockerContext")


def _extract_zip(archive: Path, target: Path, limits: Limits) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            # zipfile never yields more than a member's declared size, so the sum is a true bound.
            _check_members([(i.filename, i.is_dir(), i.file_size) for i in infos], limits)
            target.mkdir(parents=True, exist_ok=True)
            for member in infos:
                destination = target.joinpath(*check_file_path(member.filename.rstrip("/")).split("/"))
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, destination.open("wb") as out:
                    shutil.copyfileobj(source, out)
                mode = (member.external_attr >> 16) & 0o777
                if mode:
                    destination.chmod(mode | 0o600)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ValueError(f"not a valid zip archive ({exc})") from None


def _extract_tar(archive: Path, target: Path, limits: Limits) -> None:
    try:
        with tarfile.open(archive, mode="r:*") as bundle:
            members: list[tuple[str, bool, int]] = []
            total = 0
            for member in bundle:  # read lazily: stop at a cap, not after a bomb is read through
                size = member.size if member.isfile() else 0
                members.append((member.name, member.isdir(), size))
                total += size
                if len(members) > limits.context_members or total > limits.context_bytes:
                    break
            _check_members(members, limits)
            target.mkdir(parents=True, exist_ok=True)
            bundle.extractall(target, filter="data")  # refuses absolute paths, .. and outside links
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ValueError(f"not a zip or tar.gz archive ({exc})") from None
