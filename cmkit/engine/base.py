"""What every runtime gives the checks: a running model server and a way to end it."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from cmkit.engine.modelenv import model_environment
from cmkit.target import LabelKind, Target

CONTAINER_PORT = 8080
NETWORK_EGRESS = ("NONE", "PUBLIC")


@dataclass(frozen=True)
class RunSpec:
    """How to start a bundle's server, whatever the runtime."""

    url_prefix: str
    environment: Mapping[str, str] = field(default_factory=dict)  # the user's --env
    contract: Mapping[str, str] = field(default_factory=dict)  # DataRobot's target variables (target_variables)
    maximum_memory: int | None = None
    network_egress: str = "PUBLIC"
    labels: Mapping[str, str] = field(default_factory=dict)
    # DataRobot's variables that name a file (CLASS_LABELS_FILE): variable -> the file's text.
    # Each runtime writes the file where its server can read it and sets the variable to its path.
    contract_files: Mapping[str, str] = field(default_factory=dict)

    def contract_environment(
        self, port: int, code_dir: str, listen: str = "0.0.0.0", files_dir: str = ""
    ) -> dict[str, str]:
        """The variables DataRobot sets on a custom model's container (docs/parity.md lists them).

        PORT for servers that read it (cmkit's runtime), ADDRESS (`listen:port`) for DRUM, which
        reads only that; a local process listens on loopback. The target variables come from
        `contract` (target_variables); those naming a file point into `files_dir`, where the
        runtime wrote `contract_files`.
        """
        return {
            **self.contract,
            **{name: f"{files_dir}/{name}" for name in self.contract_files},
            "PORT": str(port),
            "ADDRESS": f"{listen}:{port}",
            "URL_PREFIX": self.url_prefix,
            "CODE_DIR": code_dir,
        }

    def server_environment(
        self,
        port: int,
        code_dir: str,
        host: Mapping[str, str] | None = None,
        listen: str = "0.0.0.0",
        files_dir: str = "",
    ) -> dict[str, str]:
        """The contract, the user's `environment` (--env) and the allowlisted `host` variables."""
        contract = self.contract_environment(port, code_dir, listen, files_dir)
        return model_environment(contract, self.environment, host or {})


def target_variables(target: Target) -> dict[str, str]:
    """What DataRobot sets on a custom model's container for its target, in the forms DRUM reads.

    TARGET_TYPE always, TARGET_NAME when the model has a target column (docs/parity.md lists them).

    Binary labels go in POSITIVE_CLASS_LABEL and NEGATIVE_CLASS_LABEL; multiclass labels in
    CLASS_LABELS, separated by spaces as DRUM splits them. Labels holding white space cannot
    travel that way: the variable is left out and the runtime reads model-metadata.yaml.
    """
    variables, labels = {"TARGET_TYPE": target.type.drum_name}, target.labels
    if target.name:  # DRUM's text generation, vector database and agentic models refuse to start without it
        variables["TARGET_NAME"] = target.name
    if target.type.label_kind is LabelKind.PAIR and len(labels) == 2:
        variables["POSITIVE_CLASS_LABEL"], variables["NEGATIVE_CLASS_LABEL"] = labels
    elif target.type.label_kind is LabelKind.LIST and labels and all(label.split() == [label] for label in labels):
        variables["CLASS_LABELS"] = " ".join(labels)
    return variables


def target_files(target: Target) -> dict[str, str]:
    """The files DataRobot's variables name for `target`: CLASS_LABELS_FILE when CLASS_LABELS cannot carry the labels.

    One label a line, as DRUM's `--class-labels-file` (which the CLASS_LABELS_FILE variable becomes)
    and cmkit's runtime read it.
    """
    labels = target.labels
    if target.type.label_kind is LabelKind.LIST and labels and "CLASS_LABELS" not in target_variables(target):
        return {"CLASS_LABELS_FILE": "".join(f"{label}\n" for label in labels)}
    return {}


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int | None
    oom_killed: bool = False

    def describe(self) -> str:
        if self.oom_killed:
            return f"killed for exceeding its memory limit (OOM, exit code {self.exit_code})"
        return f"exited with code {self.exit_code}"

    def to_dict(self) -> dict[str, object]:
        return {"exitCode": self.exit_code, "oomKilled": self.oom_killed}


class Server(ABC):
    """A started model server. `stop()` is idempotent, must always be called and is all the clean-up it needs."""

    base_url: str
    url_prefix: str
    runtime: str

    @property
    def url(self) -> str:
        """Where the routes live: `GET {url}/` and `POST {url}/predict_no_state/`."""
        return self.base_url + self.url_prefix

    @abstractmethod
    def exit_info(self) -> ExitInfo | None:
        """None while the server process runs; how it ended otherwise."""

    def start_hint(self) -> str | None:
        """Why the server died starting, when the runtime can tell more than its log (None: it cannot)."""
        return None

    def oom_killed(self) -> bool:
        """Whether a process of the server was killed for exceeding the memory limit."""
        return False

    @abstractmethod
    def logs(self, tail: int | None = 50) -> str:
        """The server's output so far (the last `tail` lines)."""

    @abstractmethod
    def follow_logs(self) -> Iterator[str]:
        """Log lines as they come, until the server ends."""

    @property
    def host_port(self) -> int | None:
        """The port this machine (or the engine) serves it on; None when it is reached otherwise."""
        return None

    def stop(self) -> None:
        """End the server and remove everything the runtime created for it (containers, clients, logs).

        Idempotent. A Ctrl-C that arrives meanwhile waits until the clean-up is done.
        """
        with signals_deferred():
            self._stop()

    @abstractmethod
    def _stop(self) -> None:
        """What `stop()` runs: each runtime ends and removes what it made, and nothing else may need to."""

    def leftovers(self) -> dict[str, object] | None:
        """After stop(): processes that had left the server's process group, and any still alive."""
        return None

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """Identifiers for reports (container id, pid...)."""


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Let cleanup finish when a second Ctrl-C (or SIGTERM) arrives while it runs.

    Signals received meanwhile are re-delivered afterwards. Only the main thread can do this;
    elsewhere (the emulator's job threads) it is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[signal.Signals] = []
    previous = {
        sig: signal.signal(sig, lambda number, frame: received.append(signal.Signals(number))) for sig in _DEFERRED
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in received[:1]:
            signal.raise_signal(sig)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


def random_url_prefix() -> str:
    """A fresh prefix holding slashes, to prove the server honours URL_PREFIX."""
    return f"/cmkit-{secrets.token_hex(4)}/predApi/v1"


def normalise_url_prefix(prefix: str) -> str:
    cleaned = "/" + prefix.strip().strip("/")
    return "" if cleaned == "/" else cleaned


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
