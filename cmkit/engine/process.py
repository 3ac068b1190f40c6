"""Run a bundle's `start_server.sh` directly on this machine: in a venv of the bundle's own
requirements (cmkit/engine/venvs.py), or in the current Python environment (`--host-python`).

The fallback when no Docker engine answers, and the fast path for benchmarks. It cannot enforce
a memory limit or cut the network: the report says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from cmkit.bundle import START_SCRIPT
from cmkit.engine import processtree
from cmkit.engine.base import ExitInfo, RunSpec, Server, free_port
from cmkit.errors import InputError

STOP_GRACE_SECONDS = 5.0
# The server writes its output straight into a file of its own; cmkit reads only its end. A
# model printing 200 MiB once made cmkit hold 913 MiB: reports need the last lines only.
MAX_LOG_BYTES = 1024 * 1024


class ProcessServer(Server):
    runtime = "process"

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log_path: Path,
        port: int,
        spec: RunSpec,
        tracker: processtree.ProcessTracker,
        bundle: Path,
        venv: Path | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.process = process
        self.files_dir = files_dir  # the contract's files (CLASS_LABELS_FILE), removed at stop
        self.bundle = bundle
        self.venv = venv  # None: cmkit's own Python
        self.log_path = log_path
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.url_prefix = spec.url_prefix
        self.tracker = tracker  # every process the server starts, wherever it goes
        self._stopped = False
        self._leftovers: dict[str, object] | None = None
        self._final_logs: str | None = None

    def exit_info(self) -> ExitInfo | None:
        code = self.process.poll()
        if code is None:
            return None
        # A negative code is a signal; -9 from the kernel's OOM killer looks the same as a kill.
        return ExitInfo(code)

    @property
    def host_port(self) -> int | None:
        return self.port

    def logs(self, tail: int | None = 50) -> str:
        text = self._final_logs if self._final_logs is not None else self._read_log()
        return "\n".join(text.splitlines()[-tail:]) if tail else text

    def _read_log(self) -> str:
        """The log's last MAX_LOG_BYTES at most, from its first whole line in them."""
        try:
            with self.log_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - MAX_LOG_BYTES))
                data = handle.read(MAX_LOG_BYTES)
        except OSError:
            return ""
        if size > MAX_LOG_BYTES:
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else data
        return data.decode("utf-8", errors="replace")

    def follow_logs(self) -> Iterator[str]:
        try:
            handle = self.log_path.open(encoding="utf-8", errors="replace")
        except OSError:  # stopped already: its log file is gone
            return
        with handle:
            handle.seek(0, os.SEEK_END)
            while True:
                line = handle.readline()
                if line:
                    yield line.rstrip("\n")
                elif self.process.poll() is not None:
                    return
                else:
                    time.sleep(0.1)

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # Processes that left the group (a daemonizing server) are found by the tracker.
        escaped = [pid for pid in self.tracker.members() if _group_of(pid) != self.process.pid]
        # start_new_session made the script a process-group leader: end the whole tree.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.tracker.end(STOP_GRACE_SECONDS)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        pause = processtree.pauses()
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(next(pause))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._leftovers = {"tracking": self.tracker.method, "escaped": escaped, "survived": self.tracker.members()}
        self.tracker.close()
        # The log file is the run's own: its text is kept for the report, the file removed.
        self._final_logs = self._read_log()
        with contextlib.suppress(OSError):
            self.log_path.unlink()
        if self.files_dir is not None:
            shutil.rmtree(self.files_dir, ignore_errors=True)

    def leftovers(self) -> dict[str, object] | None:
        return self._leftovers

    def start_hint(self) -> str | None:
        """An isolated model that died importing what its bundle does not declare: says so."""
        if self.venv is None:
            return None
        from cmkit.engine.venvs import undeclared_import

        return undeclared_import(self.logs(tail=None), self.bundle)

    def describe(self) -> dict[str, object]:
        return {"runtime": self.runtime, "pid": self.process.pid, "url": self.url}


def server_command(bundle: Path, python: Path | None = None) -> list[str]:
    """The bundle's start_server.sh, else the runtime (of the venv's `python`, or installed with
    cmkit), as an environment provides it."""
    script = bundle / START_SCRIPT
    if script.is_file():
        return [str(script)]
    return [str(python or sys.executable), "-m", "cmkit_runtime", "serve", "--code-dir", str(bundle)]


def _runtime_source(env: dict[str, str]) -> dict[str, str]:
    """PYTHONPATH naming the source tree cmkit_runtime comes from, when cmkit runs from one (not installed).

    Otherwise the server would import whichever copy the environment installed (an editable install
    of another checkout), not the runtime of the cmkit that is testing it.
    """
    import cmkit_runtime

    root = Path(cmkit_runtime.__file__).resolve().parent.parent
    if root.name in ("site-packages", "dist-packages"):
        return {}
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)}


def start_process(bundle: Path, spec: RunSpec, port: int | None = None, venv: Path | None = None) -> ProcessServer:
    """Start the bundle's server on `port` (default: a free one), from `venv` (None: cmkit's Python)."""
    bundle = Path(bundle).resolve()
    if not bundle.is_dir():
        raise InputError("not a bundle folder", file=bundle)
    port = port or free_port()
    files_dir = write_contract_files(spec.contract_files)
    # Not os.environ: the host's secrets (DATAROBOT_API_TOKEN...) must not reach the model.
    env = spec.server_environment(
        port, str(bundle), host=os.environ, listen="127.0.0.1", files_dir=str(files_dir or "")
    )
    # What a killed cmkit (SIGKILL while its model loaded) left running is ended first.
    processtree.sweep_leftovers()
    tracker = processtree.ProcessTracker()
    env.update(tracker.environment())
    bin_dir = venv / "bin" if venv else Path(sys.executable).parent
    command = server_command(bundle, bin_dir / "python" if venv else None)
    script = bundle / START_SCRIPT
    if not script.is_file() or _directly_executable(script):
        command = tracker.command(command)
    # The bundle's server runs from its venv, or this Python environment (cmkit-runtime, gunicorn, pandas...).
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    if venv:
        env["VIRTUAL_ENV"] = str(venv)
    else:  # cmkit's own Python: the runtime of the cmkit that is testing it (a venv installs that one)
        env.update(_runtime_source(env))
    handle, name = tempfile.mkstemp(prefix=processtree.owned_prefix(processtree.SERVER_LOG_PREFIX), suffix=".log")
    with os.fdopen(handle, "wb") as log:
        try:
            process = subprocess.Popen(
                command,
                cwd=bundle,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            # Popen refused the command (a start_server.sh without a shebang): nothing ran, nothing is kept.
            tracker.close()
            Path(name).unlink(missing_ok=True)
            if files_dir is not None:
                shutil.rmtree(files_dir, ignore_errors=True)
            raise
    return ProcessServer(process, Path(name), port, spec, tracker, bundle, venv, files_dir)


def write_contract_files(files: Mapping[str, str]) -> Path | None:
    """The contract's files in a private folder of their own (None: there are none)."""
    if not files:
        return None
    folder = Path(tempfile.mkdtemp(prefix=processtree.owned_prefix(processtree.CONTRACT_PREFIX)))
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _directly_executable(script: Path) -> bool:
    """Executable with a shebang: the cgroup wrapper's `exec` then behaves exactly as Popen's.

    Anything else is started bare so that Popen reports the problem itself (a shell would run a
    script without a shebang instead of failing as DataRobot does).
    """
    try:
        with script.open("rb") as handle:
            return os.access(script, os.X_OK) and handle.read(2) == b"#!"
    except OSError:
        return False


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
