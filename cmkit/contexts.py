"""Unpacking a docker context (zip or tar.gz), checked before anything is written.

The one safe unpacker of docker contexts: `cmkit test-local --environment-id` (cmkit.remoteenv)
unpacks the contexts it downloads with it, and the emulator the environment versions uploaded
to it (`cmkit.emulator.contexts` answers its refusals as HTTP errors). Every member's path
(`cmkit.safepaths`), the member count and the unpacked size are checked first.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from cmkit.errors import InputError
from cmkit.safepaths import UnsafePath, check_path_set, member_path

FIELD = "dockerContext"  # what a refused member is named after, as the API names the upload


@dataclass(frozen=True)
class ContextLimits:
    """Caps on one docker context, unpacked (the emulator's defaults: docs/emulator.md, "Limits")."""

    context_bytes: int = 2 * 1024**3  # extracted
    context_members: int = 10_000  # files and folders


@dataclass
class ContextError(InputError):
    """A docker context the unpacker refuses; nothing was written."""


@dataclass
class ContextRefused(ContextError):
    """A member's path or the context's size refused: `reason` says what, `too_large` past a cap."""

    reason: str = ""
    too_large: bool = False


@dataclass
class NotAContext(ContextError):
    """Neither a zip nor a tar(.gz) archive, or one without a top-level Dockerfile."""


def extract_context(archive: Path, target: Path, limits: ContextLimits | None = None) -> None:
    """Unpack a zip or tar(.gz) docker context into `target`.

    Every member's path, the member count and the extracted size are checked before anything
    is written: ContextRefused for a bad path or past a cap, NotAContext when the archive is
    neither format or lacks a top-level Dockerfile.
    """
    limits = limits or ContextLimits()
    with archive.open("rb") as handle:
        magic = handle.read(4)
    try:
        if magic.startswith(b"PK"):
            _extract_zip(archive, target, limits)
        else:
            _extract_tar(archive, target, limits)
    except UnsafePath as exc:
        raise ContextRefused(exc.message, reason=exc.reason) from None
    except ValueError as exc:  # what else a reader trips over in a corrupt archive
        raise NotAContext(str(exc)) from None
    if not (target / "Dockerfile").is_file():
        raise NotAContext("the archive has no top-level Dockerfile")


def _too_large(reason: str) -> ContextRefused:
    return ContextRefused(f"Invalid docker context: {reason}", reason=reason, too_large=True)


def _check_members(members: list[tuple[str, bool, int]], limits: ContextLimits) -> None:
    """(name, is_dir, size) of every member: paths as for model files, then the caps."""
    if len(members) > limits.context_members:
        raise _too_large(f"it holds more than {limits.context_members} files and folders")
    files, folders, total = [], set(), 0
    for name, is_dir, size in members:
        path = member_path(name.rstrip("/") if is_dir else name, FIELD)
        if is_dir:
            folders.add(path)
        else:
            files.append(path)
            total += size
    if total > limits.context_bytes:
        raise _too_large(f"it unpacks to more than {limits.context_bytes} bytes")
    clash = folders.intersection(files)
    if clash:
        raise ContextRefused(f"Invalid docker context: {min(clash)!r} is a file and a folder", reason="clash")
    check_path_set(files, FIELD)


def _extract_zip(archive: Path, target: Path, limits: ContextLimits) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            # zipfile never yields more than a member's declared size, so the sum is a true bound.
            _check_members([(i.filename, i.is_dir(), i.file_size) for i in infos], limits)
            target.mkdir(parents=True, exist_ok=True)
            for member in infos:
                destination = target.joinpath(*member_path(member.filename.rstrip("/"), FIELD).split("/"))
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
        raise NotAContext(f"not a valid zip archive ({exc})") from None


def _extract_tar(archive: Path, target: Path, limits: ContextLimits) -> None:
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
        raise NotAContext(f"not a zip or tar.gz archive ({exc})") from None
