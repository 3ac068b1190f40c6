"""An execution environment's docker context, as cmkit builds it and uploads it.

The model runtime (`cmkit_runtime`) has one copy of its source: the package installed with
cmkit. An environment whose Dockerfile copies `cmkit_runtime/` and whose folder does not hold
one gets that package's source added to its context, for `test-local`'s builds, for `cmkit env
push` (so the uploaded context is self-contained, as DataRobot needs) and for the emulator's
seeded environment. The content hash of the context, and so the environment image's tag,
covers the runtime: a runtime change rebuilds the environment.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from docker.utils.build import exclude_paths

import cmkit_runtime
from cmkit.archives import write_zip
from cmkit.errors import InputError

RUNTIME_PACKAGE = "cmkit_runtime"
RUNTIME_DIR = Path(cmkit_runtime.__file__).resolve().parent
# `COPY cmkit_runtime ...` or `ADD cmkit_runtime/ ...` (with or without flags) asks for the runtime.
_R_BRIDGE = re.compile(r"^\s*rpy2\s*(\[[^]]*\])?\s*([=<>~!;#]|$)", re.IGNORECASE)
_ASKS_FOR_RUNTIME = re.compile(rf"^\s*(COPY|ADD)\s+(--\S+\s+)*\.?/?{RUNTIME_PACKAGE}/?\s", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ContextFile:
    path: str  # inside the context, with "/"
    source: Path

    @property
    def mode(self) -> int:
        return os.stat(self.source).st_mode & 0o777


def context_language(folder: Path) -> str:
    """The programming language DataRobot records for an environment: "r" when its requirements.txt
    installs rpy2, the bridge through which cmkit's runtime serves R models (templates/environments/r),
    else "python"."""
    requirements = Path(folder) / "requirements.txt"
    if requirements.is_file():
        for line in requirements.read_text(encoding="utf-8", errors="replace").splitlines():
            if _R_BRIDGE.match(line):
                return "r"
    return "python"


def docker_context_files(folder: Path) -> list[str]:
    """The files of a docker context as `docker build` sends them (honouring .dockerignore), sorted."""
    ignore = folder / ".dockerignore"
    patterns = ignore.read_text().splitlines() if ignore.is_file() else []
    return sorted(p for p in exclude_paths(str(folder), patterns) if (folder / p).is_file())


def wants_runtime(folder: Path) -> bool:
    """Whether the Dockerfile copies cmkit_runtime/ that the folder itself does not hold."""
    dockerfile = folder / "Dockerfile"
    if (folder / RUNTIME_PACKAGE).exists() or not dockerfile.is_file():
        return False
    return bool(_ASKS_FOR_RUNTIME.search(dockerfile.read_text(encoding="utf-8", errors="replace")))


def runtime_files() -> list[ContextFile]:
    """The runtime's source files, as they are installed with cmkit."""
    return [
        ContextFile(f"{RUNTIME_PACKAGE}/{path.relative_to(RUNTIME_DIR).as_posix()}", path)
        for path in sorted(RUNTIME_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed")
    ]


def context_files(folder: Path) -> list[ContextFile]:
    """Everything the environment's docker context holds, the runtime included where asked for."""
    folder = Path(folder)
    if not (folder / "Dockerfile").is_file():
        raise InputError("no Dockerfile in the environment folder", file=folder, hint="pass the docker context folder")
    try:
        listed = docker_context_files(folder)
    except OSError as exc:  # an unreadable .dockerignore or folder
        raise InputError(f"cannot read the docker context: {exc.strerror or exc}", file=exc.filename or folder) from exc
    except UnicodeDecodeError as exc:  # the one file read as text: its patterns
        raise InputError(
            f".dockerignore is not UTF-8 text (byte {exc.start})",
            file=folder / ".dockerignore",
            hint="save it as UTF-8",
        ) from exc
    for name in listed:
        if not os.access(folder / name, os.R_OK):
            raise InputError(
                "cannot read this file of the docker context (permission denied)",
                file=folder / name,
                hint="make it readable (chmod u+r) or list it in .dockerignore",
            )
    files = [ContextFile(rel, folder / rel) for rel in listed]
    if wants_runtime(folder):
        files += runtime_files()
    return files


def context_digest(files: list[ContextFile]) -> str:
    digest = hashlib.sha256()
    for file in files:
        content = hashlib.sha256(file.source.read_bytes()).hexdigest()
        digest.update(f"{file.path}\0{file.mode:o}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()


def zip_context(files: list[ContextFile]) -> IO[bytes]:
    """The context as a zip, spooled to disk (the upload DataRobot takes)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    return write_zip(((file.source, file.path) for file in files), spool)


def tar_context(files: list[ContextFile], dockerfile_suffix: str = "") -> IO[bytes]:
    """The context as a tar, spooled to disk (what `docker build` takes); `dockerfile_suffix`
    is added at the end of its Dockerfile (cmkit's labels: see ImageBuilder.environment)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    with tarfile.open(fileobj=spool, mode="w") as archive:
        for file in files:
            info = archive.gettarinfo(str(file.source), arcname=file.path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if file.path == "Dockerfile" and dockerfile_suffix:
                content = file.source.read_bytes() + dockerfile_suffix.encode()
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
                continue
            with file.source.open("rb") as handle:
                archive.addfile(info, handle)
    spool.seek(0)
    return spool
