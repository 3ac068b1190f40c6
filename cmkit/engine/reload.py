"""Bring an edited bundle to a server that keeps running, and reload its model (`--watch`).

Docker: changed files reach `/opt/code` through the API's archive upload (owned by the image's
user, so the model can still write next to its code; it works with a remote engine), removed
ones go in one `rm` exec. Both runtimes then reload cmkit-runtime's workers with SIGHUP to
gunicorn's master: the port stays open, new workers fork from the master and import custom.py
afresh (the app is not preloaded), the old ones finish their requests and leave. `GET
$URL_PREFIX/info/` reports each worker's `generation`, which the master raises on every
reload, so a watcher knows when the answering worker is a new one and not a leaving one.

A server that cannot be reloaded (a start script that is not cmkit-runtime, or a server that
exited, e.g. after an edit that broke the model's load) is restarted instead: the container is
started again with its synced files, the process started again on the same port.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import urllib3
from docker.errors import APIError, NotFound
from urllib3.exceptions import HTTPError

from cmkit.bundle import BundleFile
from cmkit.engine.base import Server
from cmkit.engine.docker import DockerServer
from cmkit.engine.images import CODE_DIR
from cmkit.engine.process import ProcessServer

POLL_SECONDS = 0.01
RESTART_STOP_SECONDS = 3


class SyncFailed(Exception):
    """The files could not be brought into the container."""


@dataclass(frozen=True)
class ServerInfo:
    """What a server's `GET /info/` says that a watcher uses (cmkit-runtime's; other servers say less)."""

    runtime: object  # "cmkit-runtime" for cmkit's model server
    generation: int | None  # the answering worker's generation; None: the server does not count reloads
    master_pid: int | None  # gunicorn's master, the parent of the workers
    loaded: bool  # the answering worker's model is loaded
    workers_loading: bool  # some of the reload's new workers are still importing the model

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> ServerInfo:
        generation, master = document.get("generation"), document.get("masterPid")
        return cls(
            runtime=document.get("runtime"),
            generation=generation if isinstance(generation, int) else None,
            master_pid=master if isinstance(master, int) else None,
            loaded=bool(document.get("loaded")),
            workers_loading=bool(document.get("workersLoading")),
        )

    @property
    def reloadable(self) -> bool:
        """Whether the server is a cmkit-runtime that counts its reloads."""
        return self.runtime == "cmkit-runtime" and self.generation is not None


def fetch_info(server: Server, timeout: float = 2.0) -> ServerInfo | None:
    """`GET {url}/info/` on a fresh connection (a kept-alive one could stay with a leaving worker)."""
    base = urllib3.util.parse_url(server.url)
    pool = urllib3.HTTPConnectionPool(base.host or "127.0.0.1", base.port or 80, maxsize=1)
    try:
        response = pool.urlopen(
            "GET", f"{base.path or ''}/info/", retries=False, timeout=timeout, headers={"Connection": "close"}
        )
        if response.status != 200:
            return None
        document = json.loads(response.data)
    except (HTTPError, ValueError, OSError):
        return None
    finally:
        pool.close()
    return ServerInfo.from_api(document) if isinstance(document, dict) else None


@dataclass
class Reload:
    """A reload signalled to a running server: the generation its new workers will report."""

    generation: int


def signal_reload(server: Server, info: ServerInfo) -> Reload:
    """SIGHUP to gunicorn's master (the pid its workers report as their parent)."""
    master, generation = info.master_pid, info.generation
    if master is None or generation is None:
        raise ProcessLookupError("the server's /info/ names no master pid or generation")
    if isinstance(server, DockerServer):
        if master == 1:
            server.container.kill(signal="SIGHUP")
        else:  # a start script that did not exec: signal the master from inside
            server.container.exec_run(["kill", "-HUP", str(master)])
    elif isinstance(server, ProcessServer):
        if os.getpgid(master) != server.process.pid:
            raise ProcessLookupError(f"pid {master} is not part of the server started")
        os.kill(master, signal.SIGHUP)
    else:
        raise ProcessLookupError(f"a {server.runtime} server cannot be signalled")
    return Reload(generation + 1)


def wait_generation(server: Server, generation: int, timeout: float) -> bool:
    """Until a worker of `generation` answers with its model loaded; False if the server ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.exit_info() is not None:
            return False
        info = fetch_info(server, timeout=1.0)
        # Every new worker loaded: a straggler still importing custom.py while the next edit's
        # files are unpacked (Docker removes a file, then writes it) could find none.
        if info is not None and (info.generation or 0) >= generation and info.loaded and not info.workers_loading:
            return True
        time.sleep(POLL_SECONDS)
    return False


class ContainerSync:
    """Copies a bundle's changed files into a running (or exited) container's /opt/code."""

    def __init__(self, server: DockerServer) -> None:
        self.server = server
        self.container = server.container
        self._owner: tuple[int, int] | None = None

    def owner(self) -> tuple[int, int]:
        """The uid and gid the container runs as (the image's user), looked up once."""
        if self._owner is None:
            result = self.container.exec_run(["sh", "-c", "id -u; id -g"])
            numbers = bytes(result.output).decode().split()
            self._owner = (int(numbers[0]), int(numbers[1])) if result.exit_code == 0 and len(numbers) == 2 else (0, 0)
        return self._owner

    def apply(self, files: Iterable[BundleFile], removed: Iterable[str]) -> None:
        files, removed = list(files), sorted(removed)
        try:
            if files:
                self.container.put_archive(CODE_DIR, _archive(files, self.owner()))
            if removed:
                paths = [f"{CODE_DIR}/{path}" for path in removed]
                result = self.container.exec_run(["rm", "-f", "--", *paths])
                if result.exit_code != 0:
                    raise SyncFailed(bytes(result.output).decode(errors="replace").strip())
        except (APIError, NotFound) as exc:
            raise SyncFailed(str(exc)) from exc


def _archive(files: list[BundleFile], owner: tuple[int, int]) -> bytes:
    """A tar of the files under their bundle paths, with their parent folders, owned by `owner`."""
    uid, gid = owner
    buffer = io.BytesIO()
    folders = sorted({str(parent) for f in files for parent in PurePosixPath(f.path).parents if str(parent) != "."})
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o755, uid, gid, int(time.time())
            archive.addfile(info)
        for file in files:
            stat = file.source.stat()
            info = tarfile.TarInfo(file.path)
            info.size, info.mode, info.mtime = stat.st_size, stat.st_mode & 0o777, int(stat.st_mtime)
            info.uid, info.gid = uid, gid
            with file.source.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


def restart_container(server: DockerServer) -> None:
    """Start the container again (its synced files kept), and find its published port anew."""
    container = server.container
    with contextlib.suppress(NotFound):
        container.reload()
    if container.status == "running":
        container.restart(timeout=RESTART_STOP_SECONDS)
    else:
        container.start()
    server.refresh_address()
