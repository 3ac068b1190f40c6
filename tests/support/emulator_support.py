"""Run `cmkit emulator` for real (a subprocess on a free loopback port) and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from tests.conftest import TEST_LABEL, TEST_RUN_ID

if TYPE_CHECKING:  # flask_transport imports this module
    from tests.support.flask_transport import InProcessEmulator

T = TypeVar("T")
TOKEN = "test-token-0123456789"
READY_TIMEOUT = 120.0


class Emulator:
    """A running `cmkit emulator --json`, stopped by pid (SIGTERM, then SIGKILL if it hangs)."""

    def __init__(self, data_dir: Path, runtime: str = "process", extra: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.runtime = runtime
        self.extra = list(extra)
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.stderr: list[str] = []

    def start(self) -> Emulator:
        command = [sys.executable, "-m", "cmkit", "emulator", "--json", "--port", "0"]
        command += ["--data-dir", str(self.data_dir), "--token", TOKEN, "--runtime", self.runtime]
        command += ["--docker-label", f"{TEST_LABEL}={TEST_RUN_ID}", *self.extra]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        line = _readline(self.process, READY_TIMEOUT)
        if not line:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {''.join(self.stderr)}")
        self.info = json.loads(line)
        return self

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    @property
    def endpoint(self) -> str:
        return str(self.info["endpoint"])

    @property
    def root(self) -> str:
        return self.endpoint.removesuffix("api/v2/")

    def session(self, scheme: str = "Bearer") -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"{scheme} {TOKEN}"
        return session

    def url(self, path: str) -> str:
        return self.endpoint + path

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """End the emulator (we started it: signal our pid) and wait for it; its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or "" if the process exits or stays silent past `timeout`."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def wait_for(probe: Callable[[], T | None], timeout: float = 300.0, interval: float = 0.2) -> T:
    """Poll until `probe` returns something truthy (a wait, not an assertion on time).

    The pause between probes starts at 5 ms and doubles up to `interval`: an in-process
    emulator's jobs are threads that end within milliseconds, and a fixed 0.2 s pause made
    every wait in the fast tier last at least that long.
    """
    deadline = time.monotonic() + timeout
    pause = min(0.005, interval)
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting after {timeout} s; last value {value!r}")
        time.sleep(pause)
        pause = min(pause * 2, interval)


def ended(api: requests.Session, status_url: str) -> requests.Response:
    """The async status once its job ended: a 303 to the result, or 200 with a final status."""

    def final() -> requests.Response | None:
        polled = api.get(status_url, allow_redirects=False)
        return polled if polled.status_code == 303 or polled.json()["status"] in ("ERROR", "ABORTED") else None

    return wait_for(final, timeout=60, interval=0.02)


def ingested(
    emulator: Emulator | InProcessEmulator, api: requests.Session, content: bytes, name: str = "train.csv"
) -> str:
    """`content` uploaded as a dataset and its ingestion ended: its catalog id."""
    response = api.post(emulator.url("datasets/fromFile/"), files={"file": (name, content)}, allow_redirects=False)
    assert ended(api, response.headers["Location"]).status_code == 303
    return str(response.json()["catalogId"])


def seeded_environment_ready(emulator: Emulator, timeout: float = 900.0) -> dict[str, Any]:
    """Wait until the seeded environment's build ends; its latest version."""
    session = emulator.session()
    env_id = emulator.info["environmentId"]

    def finished() -> dict[str, Any] | None:
        version = session.get(emulator.url(f"executionEnvironments/{env_id}/")).json()["latestVersion"]
        return version if version["buildStatus"] in ("success", "failed") else None

    version = wait_for(finished, timeout, 1.0)
    assert version["buildStatus"] == "success", session.get(
        emulator.url(f"executionEnvironments/{env_id}/versions/{version['id']}/buildLog/")
    ).json()
    return version


def upload_files(files: dict[str, bytes]) -> list[tuple[str, tuple[str | None, bytes]]]:
    """Multipart file/filePath pairs in the order the API matches them."""
    parts: list[tuple[str, tuple[str | None, bytes]]] = []
    for path, content in files.items():
        parts.append(("file", (path.rsplit("/", 1)[-1], content)))
        parts.append(("filePath", (None, path.encode())))
    return parts


# -- in-process: the Flask test client (fast tier) ----------------------------------------------


class FlaskEmulator:
    """The emulator's Flask app on a real data dir and the process runtime, without a socket."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        from cmkit.emulator import startup
        from cmkit.emulator.app import create_app
        from cmkit.emulator.faults import FaultInjector, Journal
        from cmkit.emulator.jobs import ProcessJobs
        from cmkit.emulator.service import Emulator as Core
        from cmkit.emulator.service import EmulatorSettings
        from cmkit.paths import default_environment_dir

        self.data_dir = data_dir
        self.core = Core(
            EmulatorSettings(data_dir, (TOKEN,), seed_environment=default_environment_dir(), **settings),
            ProcessJobs(),
        )
        startup.start(self.core)
        self.injector = FaultInjector()
        self.app = create_app(self.core, self.injector, Journal())
        self.client = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """`path` relative to /api/v2/ (or absolute when it starts with /)."""
        url = path if path.startswith("/") else f"/api/v2/{path}"
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def environment_id(self) -> str:
        """The seeded environment, once its (process runtime: instant) build is recorded."""
        env_id = str(self.core.store.meta("seedEnvironmentId"))

        def built() -> bool:
            latest = self.request("GET", f"executionEnvironments/{env_id}/").get_json().get("latestVersion")
            return bool(latest and latest["buildStatus"] == "success")

        wait_for(built, 30)
        return env_id

    def model(self, **fields: Any) -> str:
        body = {"name": "m", "customModelType": "inference", "targetType": "Regression", "targetName": "y", **fields}
        response = self.request("POST", "customModels/", json=body)
        assert response.status_code == 201, response.get_json()
        return str(response.get_json()["id"])

    def version(
        self, model_id: str, files: dict[str, bytes], method: str = "POST", environment_id: str = "", **fields: Any
    ) -> Any:
        import io

        data: list[tuple[str, Any]] = [("isMajorUpdate", "false")]
        if method == "POST":
            data.append(("baseEnvironmentId", environment_id or self.environment_id()))
        data += [(k, str(v)) for k, v in fields.items()]
        for path, content in files.items():
            data.append(("file", (io.BytesIO(content), path.rsplit("/", 1)[-1])))
            data.append(("filePath", path))
        return self.request(method, f"customModels/{model_id}/versions/", data=_multidict(data))

    def close(self) -> None:
        self.core.stop()


def _multidict(pairs: list[tuple[str, Any]]) -> Any:
    from werkzeug.datastructures import MultiDict

    return MultiDict(pairs)


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    """A tar archive of `members` (name -> content), gzipped unless `mode` says otherwise."""
    buffer = BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, BytesIO(content))
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of `members` (name -> content), as the emulator's upload tests send one."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()
