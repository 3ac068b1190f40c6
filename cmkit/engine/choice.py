"""The runtime: where a model server runs, in a Docker container or as a local process.

"Runtime" means this one choice in cmkit's code (the `--runtime docker|process` flag of
test-local, serve and the emulator); the model server that runs there is cmkit-runtime
(`cmkit_runtime/`). `choose_runtime` is the one rule every command applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard

from cmkit.errors import DockerUnavailable, InputError

RuntimeName = Literal["docker", "process"]
DOCKER: RuntimeName = "docker"
PROCESS: RuntimeName = "process"
RUNTIMES: tuple[RuntimeName, ...] = (DOCKER, PROCESS)


def is_runtime(value: str | None) -> TypeGuard[RuntimeName]:
    return value in RUNTIMES


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime chosen, and why not Docker when Docker was not asked for and no engine answered."""

    name: RuntimeName
    fallback: DockerUnavailable | None = None  # set when the process runtime replaced an absent engine

    @property
    def docker(self) -> bool:
        return self.name == DOCKER


def choose_runtime(requested: str | None, needs_docker: bool = False) -> RuntimeChoice:
    """The runtime asked for; without a choice Docker when an engine answers, else processes.

    An engine asked for by name is reached when a server starts (DockerUnavailable there, exit
    3); without a choice it is probed now, once. `needs_docker`: the run asked for what only
    Docker can do (an environment folder, an image), so an absent engine is an error, not a
    fallback.
    """
    if requested is not None:
        if not is_runtime(requested):
            raise InputError(f"unknown runtime '{requested}'", hint="use docker or process")
        return RuntimeChoice(requested)
    from cmkit.engine.docker import docker_client  # here: the docker SDK's import costs 0.3 s

    try:
        docker_client().close()
    except DockerUnavailable as exc:
        if needs_docker:
            raise
        return RuntimeChoice(PROCESS, exc)
    return RuntimeChoice(DOCKER)
