"""Run a bundle's image as a container, the way DataRobot runs a custom model."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
from docker.errors import APIError, DockerException, NotFound

from cmkit.engine.base import CONTAINER_PORT, ExitInfo, RunSpec, Server
from cmkit.engine.builder import ImageBuilder
from cmkit.engine.forward import ExecForwarder
from cmkit.engine.images import CODE_DIR, BuildFailed, ModelImage
from cmkit.errors import CmkitError, DockerUnavailable

LABEL = "cmkit"
RUN_LABEL = "cmkit.run"
# Where the files DataRobot's variables name (CLASS_LABELS_FILE) are put in a container: /tmp
# exists in every image, and the folder is the run's own.
CONTRACT_FILES_DIR = "/tmp/cmkit-contract"


class ContainerStartFailed(CmkitError):
    """The engine created the container but could not start it (its entrypoint is missing...)."""


def docker_client(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine in DOCKER_HOST (or the local socket); DockerUnavailable if none answers."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            f"no Docker engine answers ({exc.__class__.__name__})",
            hint="start Docker, set DOCKER_HOST, or use --runtime process",
        ) from exc
    return client


def engine_host() -> str | None:
    """The engine's host name when DOCKER_HOST points at another machine, else None (local)."""
    parsed = urlsplit(os.environ.get("DOCKER_HOST", ""))
    if parsed.scheme in ("tcp", "ssh", "http", "https") and parsed.hostname not in (None, "localhost", "127.0.0.1"):
        return parsed.hostname
    return None


class DockerServer(Server):
    runtime = "docker"

    def __init__(self, client: docker.DockerClient, container: Any, spec: RunSpec) -> None:
        """Takes ownership of `client`: `stop()` closes it."""
        self.client = client
        self.container = container
        self.url_prefix = spec.url_prefix
        self.network_egress = spec.network_egress
        self._forwarder: ExecForwarder | None = None
        self._stopped = False
        self._final_logs: str | None = None
        self._on_stop: list[Callable[[], None]] = []
        self._started = int(time.time()) - 1
        if spec.network_egress == "NONE":
            self._forwarder = ExecForwarder(client, container.id, CONTAINER_PORT)
            self.base_url = f"http://127.0.0.1:{self._forwarder.local_port}"
        else:
            self.refresh_address()

    def refresh_address(self) -> None:
        """Find the published port (again, after the container was restarted)."""
        if self._forwarder is None:
            self.base_url = f"http://{engine_host() or '127.0.0.1'}:{self._published_port()}"

    @property
    def published_port(self) -> int | None:
        """The engine's port for the server (None without a network)."""
        return None if self._forwarder else int(self.base_url.rsplit(":", 1)[1])

    def _published_port(self) -> int:
        self.container.reload()
        bindings = (self.container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{CONTAINER_PORT}/tcp") or []
        if not bindings:  # the container died before Docker could publish the port
            return 0
        return int(bindings[0]["HostPort"])

    def exit_info(self) -> ExitInfo | None:
        try:
            self.container.reload()
        except NotFound:
            return ExitInfo(None)
        state = self.container.attrs["State"]
        if state.get("Running") or state.get("Status") in ("created", "restarting"):
            return None
        return ExitInfo(state.get("ExitCode"), bool(state.get("OOMKilled")))

    def oom_killed(self) -> bool:
        """True once the kernel killed any process of the container for its memory limit.

        A server whose worker is OOM-killed often keeps running (gunicorn respawns the worker),
        so the container's own OOMKilled flag is not enough: Docker's `oom` events are.
        """
        info = self.exit_info()
        if info is not None and info.oom_killed:
            return True
        with contextlib.suppress(APIError):
            events = self.client.api.events(  # type: ignore[call-overload]
                since=self._started,
                until=time.time(),  # a float: an integer in the future would block until then
                filters={"container": self.container.id, "event": "oom"},
            )
            for _ in events:
                return True
        return False

    def logs(self, tail: int | None = 50) -> str:
        if self._final_logs is not None:
            text = self._final_logs
            return "\n".join(text.splitlines()[-tail:]) if tail else text
        try:
            raw = self.container.logs(tail=tail if tail else "all")
        except (NotFound, APIError):
            return ""
        return bytes(raw).decode("utf-8", errors="replace")

    def follow_logs(self) -> Iterator[str]:
        with contextlib.suppress(NotFound, APIError):
            for chunk in self.container.logs(stream=True, follow=True, tail=0):
                yield bytes(chunk).decode("utf-8", errors="replace").rstrip("\n")

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` after the container is removed (e.g. wait for image clean-up)."""
        self._on_stop.append(callback)

    @property
    def host_port(self) -> int | None:
        return self.published_port

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._forwarder:
                self._forwarder.close()
            with contextlib.suppress(NotFound, APIError):
                self._final_logs = bytes(self.container.logs(tail=500)).decode("utf-8", errors="replace")
            with contextlib.suppress(NotFound):
                self.container.remove(force=True)
            for callback in self._on_stop:
                callback()
        finally:
            self.client.close()  # the server owns the client it was started with

    def describe(self) -> dict[str, object]:
        return {
            "runtime": self.runtime,
            "containerId": self.container.id,
            "networkEgress": self.network_egress,
            "url": self.url,
        }


def start_container(
    client: docker.DockerClient, image: str, spec: RunSpec, run_id: str, host_port: int | None = None
) -> DockerServer:
    """Start the image's `start_server.sh` with the spec's environment, limits and network policy.

    The server returned owns `client` (its `stop()` closes it); on failure the caller keeps it.

    `host_port` asks for that port on the engine (a watched server keeps its URL across new
    containers); by default the engine picks a free one.
    """
    options: dict[str, Any] = {
        "environment": spec.server_environment(CONTAINER_PORT, CODE_DIR, files_dir=CONTRACT_FILES_DIR),
        "labels": {LABEL: "1", RUN_LABEL: run_id, **spec.labels},
    }
    if spec.maximum_memory:
        # memswap == mem: a hard limit with no swap, as DataRobot enforces it.
        options.update(mem_limit=spec.maximum_memory, memswap_limit=spec.maximum_memory)
    if spec.network_egress == "NONE":
        options["network_mode"] = "none"
    else:
        bind = "0.0.0.0" if engine_host() else "127.0.0.1"
        options["ports"] = {f"{CONTAINER_PORT}/tcp": (bind, host_port)}
    # Created and started in two steps (not containers.run): a start that fails, such as a
    # missing entrypoint, would otherwise leave the container behind in "Created" state.
    container = client.containers.create(image, **options)
    try:
        try:
            if spec.contract_files:
                container.put_archive("/", contract_archive(spec.contract_files))
            container.start()
        except APIError as exc:
            raise ContainerStartFailed(f"the container could not start: {exc.explanation or exc}") from exc
        return DockerServer(client, container, spec)
    except BaseException:
        with contextlib.suppress(DockerException):
            container.remove(force=True)
        raise


def contract_archive(files: Mapping[str, str]) -> bytes:
    """A tar of the contract's files under CONTRACT_FILES_DIR, readable by any user the image runs as."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(CONTRACT_FILES_DIR.lstrip("/"))
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        for name, text in files.items():
            data = text.encode("utf-8")
            entry = tarfile.TarInfo(f"{folder.name}/{name}")
            entry.size, entry.mode = len(data), 0o644
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True)
class StartedModel:
    """A bundle's server in a container, the image it runs and how long building it took."""

    server: DockerServer
    image: ModelImage
    build_seconds: float


class ModelStartFailed(CmkitError):
    """The image could not be built or its container not started; what was found up to then."""

    def __init__(
        self,
        message: str,
        build_seconds: float,
        image: ModelImage | None = None,
        build_log: tuple[str, ...] | None = None,  # the build's log when the build failed
    ) -> None:
        super().__init__(message)
        self.build_seconds = build_seconds
        self.image = image
        self.build_log = build_log


@dataclass(frozen=True)
class ModelRequest:
    """What to build (the bundle on an environment, or on a given image) and how to serve it."""

    bundle: Path
    environment: Path | None
    image: str | None
    rebuild: bool
    spec: RunSpec
    run_id: str
    port: int | None


def start_model(
    client: docker.DockerClient, builder: ImageBuilder, request: ModelRequest, stage: Callable[[str], None]
) -> StartedModel:
    """Build the bundle's image and start its container. The server returned owns `client`
    (closed otherwise) and finishes `builder` when it stops."""
    try:
        stage("building the image (environment, dependencies, code)")
        began = time.monotonic()
        try:
            image = builder.model(
                request.bundle, environment=request.environment, image=request.image, rebuild=request.rebuild
            )
        except BuildFailed as exc:
            raise ModelStartFailed(exc.message, _since(began), build_log=tuple(exc.log)) from exc
        build_seconds = _since(began)
        stage(f"starting {image.code.tag}")
        try:
            server = start_container(client, image.code.image_id, request.spec, request.run_id, host_port=request.port)
        except ContainerStartFailed as exc:  # the container is already removed
            builder.finish()
            raise ModelStartFailed(exc.message, build_seconds, image) from exc
    except BaseException:
        client.close()
        raise
    server.on_stop(builder.finish)
    return StartedModel(server, image, build_seconds)


def _since(began: float) -> float:
    return round(time.monotonic() - began, 3)
