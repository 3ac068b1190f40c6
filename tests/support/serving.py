"""Run a bundle's start_server.sh as a real process, the way the local "process" runtime does.

The server runs in its own session (process group), with this venv's bin first on PATH, on a
free port; its output goes to a file. `serve()` stops it at the end, whatever happens: SIGTERM to
the group, then SIGKILL to whatever is left of the group. Nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from cmkit.engine.base import free_port
from cmkit.engine.process import server_command

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE = 60.0  # a safety net for a server that never answers, not a speed requirement


def server_env(port: int, prefix: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PORT": str(port)}
    # The runtime under test is this checkout's, also for another interpreter (DRUM's venv with a
    # heavy framework), which has no cmkit_runtime of its own.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.pop("URL_PREFIX", None)
    if prefix is not None:
        env["URL_PREFIX"] = prefix
    env.update(extra or {})
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    prefix: str  # normalised: "" or "/a/b"
    log_path: Path

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, route: str = "/") -> str:
        return f"{self.root}{self.prefix}{route}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def predict(self, columns: object, session: requests.Session | None = None) -> requests.Response:
        return (session or requests).post(self.url("/predict_no_state/"), json={"X": columns}, timeout=60)

    def wait_ready(self, deadline: float = STARTUP_DEADLINE) -> None:
        """Poll `GET $URL_PREFIX/` until 200; fail if the process exits or never gets ready."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(self.url("/"), timeout=5).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {deadline}s:\n{self.log()}")

    def wait_loaded(self, workers: int, deadline: float = STARTUP_DEADLINE) -> None:
        """Until every worker has loaded its model: a 200 from one says nothing of the others."""
        end = time.monotonic() + deadline
        while self.log().count("model loaded in ") < workers:
            if time.monotonic() > end or self.process.poll() is not None:
                raise AssertionError(f"{workers} workers did not all load:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM the server's process group, wait, then SIGKILL what is left of it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = -signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers a dead master left behind
        self.process.wait()
        return code


def start(
    bundle: Path,
    log_path: Path,
    *,
    prefix: str | None = "/a/b-c/d",
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Server:
    port = free_port()
    bundle = bundle.resolve()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(bundle),
            cwd=bundle,
            env=server_env(port, prefix, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    stripped = (prefix or "").strip("/")
    return Server(process, port, f"/{stripped}" if stripped else "", log_path)


@contextlib.contextmanager
def serve(
    bundle: Path,
    log_path: Path,
    *,
    prefix: str | None = "/a/b-c/d",
    env: Mapping[str, str] | None = None,
    ready: bool = True,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[Server]:
    server = start(bundle, log_path, prefix=prefix, env=env, preexec_fn=preexec_fn)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()
