"""test-local with a real Docker engine: layer caching, CA forwarding, limits, egress, cleanup."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmkit.checks.results import ERROR_CHECK, LONG_RUNNING_SERVICE, SEED_CHECKS, SIDE_EFFECTS
from cmkit.engine.builder import ImageBuilder
from cmkit.engine.images import BuildFailed, BuildSettings
from cmkit.events import RecordingEvents
from cmkit.testlocal import TestLocalConfig, run_test_local
from tests.conftest import CMKIT_COMMAND, TEST_LABEL, TEST_RUN_ID, cmkit_run_containers
from tests.support.bundles import FLASK_START, write_flask_bundle

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LABELS = {TEST_LABEL: TEST_RUN_ID}


def run(bundle: Path, events: RecordingEvents | None = None, **options: object) -> dict[str, object]:
    options = {"startup_timeout": 60, **options}
    config = TestLocalConfig(bundle=bundle, runtime="docker", labels=dict(LABELS), **options)  # type: ignore[arg-type]
    return run_test_local(config, events).to_dict()


def statuses(document: dict[str, object]) -> dict[str, str]:
    """The seed's four checks (the three later ones, off by default, are tests/checks/test_later_checks.py's)."""
    return {
        name: entry["status"]
        for name, entry in document["testingStatus"].items()  # type: ignore[union-attr]
        if name in SEED_CHECKS
    }


def bridge_gateway(client) -> str:
    """This machine's address on Docker's default bridge (what containers reach the host by)."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(ipaddress.ip_network(config["Subnet"])[1])


def dangling(client) -> set[str]:
    return {image.id for image in client.images.list(filters={"dangling": True})}


def test_layers_are_cached_by_content(docker_client, tmp_path: Path) -> None:
    # The run id keeps these layers out of caches other sessions (or earlier runs) left behind:
    # pip's layer is keyed by the text (uv's, by the packages: tests/engine/test_installs.py).
    bundle = write_flask_bundle(tmp_path, requirements=f"six==1.16.0  # {TEST_RUN_ID}\n")
    pip_run = functools.partial(run, installer="pip")
    first = pip_run(bundle)
    assert first["overallStatus"] == "succeeded", first["testingStatus"]
    url_prefix = first["details"]["urlPrefix"]  # type: ignore[index]
    assert url_prefix.count("/") >= 2  # the server honoured a prefix holding slashes

    warm_events = RecordingEvents()
    warm = pip_run(bundle, warm_events)
    assert {layer["cached"] for layer in warm["details"]["image"].values()} == {True}  # type: ignore[index]
    assert not [line for line in warm_events.lines if line.startswith("Step ")], "nothing may be built"

    (bundle / "app.py").write_text((bundle / "app.py").read_text() + "\n# an edit to model code\n")
    edit_events = RecordingEvents()
    edited = pip_run(bundle, edit_events)
    image = edited["details"]["image"]  # type: ignore[index]
    assert (image["environment"]["cached"], image["dependencies"]["cached"], image["code"]["cached"]) == (
        True,
        True,
        False,
    )
    build_output = "\n".join(edit_events.lines)
    assert "pip install" not in build_output and "Collecting" not in build_output
    assert edited["overallStatus"] == "succeeded"

    (bundle / "requirements.txt").write_text(f"six==1.17.0  # {TEST_RUN_ID}\n")
    deps_events = RecordingEvents()
    bumped = pip_run(bundle, deps_events)
    image = bumped["details"]["image"]  # type: ignore[index]
    assert image["environment"]["cached"] and not image["dependencies"]["cached"]
    assert "Successfully installed six-1.17.0" in "\n".join(deps_events.lines)


def test_builds_need_the_forwarded_ca_bundle(docker_client) -> None:
    before = dangling(docker_client)
    requirements = f"six==1.16.0  # {TEST_RUN_ID} keeps this layer out of any cache\n"
    # pip inside the image reaches the index, and needs the CA (uv's layer is filled on the host).
    without = ImageBuilder(docker_client, BuildSettings(installer="pip"), labels=LABELS)
    with pytest.raises(BuildFailed) as caught:
        without.dependencies("python:3.11-slim", requirements)
    assert "CERTIFICATE_VERIFY_FAILED" in "\n".join(caught.value.log)
    assert dangling(docker_client) <= before, "a failed build must not leave dangling images"

    settings = BuildSettings.from_environment(installer="pip")
    assert settings.ca_bundle is not None, "the CI machine sets PIP_CERT/REQUESTS_CA_BUNDLE/SSL_CERT_FILE"
    built = ImageBuilder(docker_client, settings, labels=LABELS).dependencies("python:3.11-slim", requirements)
    assert not built.cached
    assert "Successfully installed six-1.16.0" in "\n".join(built.log)


def test_memory_hog_is_oom_killed_under_the_limit(docker_client, tmp_path: Path) -> None:
    document = run(write_flask_bundle(tmp_path, "memory_hog"), maximum_memory=512 * 1024**2)
    result = document["testingStatus"][LONG_RUNNING_SERVICE]  # type: ignore[index]
    assert result["status"] == "failed"
    assert "memory limit (OOM)" in result["message"], result["message"]
    assert {s for n, s in statuses(document).items() if n != LONG_RUNNING_SERVICE} == {"aborted"}


class Listener:
    """A TCP listener this test starts on all host addresses; counts who connects."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    probe = Listener()
    yield probe
    probe.close()


def test_network_egress_none_blocks_outbound_connections(docker_client, tmp_path: Path, listener: Listener) -> None:
    gateway = bridge_gateway(docker_client)
    bundle = write_flask_bundle(tmp_path)
    environment = {"EGRESS_TARGET": f"{gateway}:{listener.port}"}

    public = run(bundle, network_egress="PUBLIC", server_environment=environment)
    assert "egress: connected" in public["details"]["logTail"]  # type: ignore[index]
    assert listener.accepted == 1, "the control run must reach the listener, or this test proves nothing"

    isolated = run(bundle, network_egress="NONE", server_environment=environment)
    assert isolated["overallStatus"] == "succeeded", isolated["testingStatus"]
    assert "egress: blocked" in isolated["details"]["logTail"]  # type: ignore[index]
    assert listener.accepted == 1


def test_nothing_is_left_after_good_and_failing_runs(docker_client, tmp_path: Path) -> None:
    before = dangling(docker_client)
    assert run(write_flask_bundle(tmp_path / "good"))["overallStatus"] == "succeeded"
    failing = run(write_flask_bundle(tmp_path / "bad", "nan_output"))
    assert statuses(failing)[ERROR_CHECK] == "failed"
    broken_start = run(write_flask_bundle(tmp_path / "exits", start_script="#!/bin/sh\nexit 4\n"))
    assert "exited with code 4" in broken_start["testingStatus"][LONG_RUNNING_SERVICE]["message"]  # type: ignore[index]
    assert cmkit_run_containers(docker_client) == []
    assert docker_client.networks.list(filters={"label": f"{TEST_LABEL}={TEST_RUN_ID}"}) == []
    assert dangling(docker_client) <= before


def test_sigint_mid_run_removes_the_container(docker_client, tmp_path: Path) -> None:
    slow = "#!/bin/sh\nsleep 60\n"
    bundle = write_flask_bundle(tmp_path, start_script=slow)
    label = f"cmkit.sigint-test={TEST_RUN_ID}"
    process = subprocess.Popen(
        [
            CMKIT_COMMAND,  # not `python -m cmkit`: see its comment
            "test-local",
            str(bundle),
            "--runtime",
            "docker",
            "--label",
            label,
            "--label",
            f"{TEST_LABEL}={TEST_RUN_ID}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not docker_client.containers.list(filters={"label": label}) and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.2)
        assert docker_client.containers.list(filters={"label": label}), "the run never started its container"
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        assert code == 130, (code, process.stderr.read().decode(errors="replace")[-3000:])  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
    assert docker_client.containers.list(all=True, filters={"label": label}) == []


def test_keep_leaves_the_server_running_until_stopped(docker_client, tmp_path: Path) -> None:
    import requests

    config = TestLocalConfig(bundle=write_flask_bundle(tmp_path), runtime="docker", labels=dict(LABELS), keep=True)
    report = run_test_local(config)
    assert report.server is not None
    try:
        assert requests.get(report.server.url + "/", timeout=5).status_code == 200
        # What the other tests' "nothing left" checks count: the kept server is one of them.
        assert len(cmkit_run_containers(docker_client)) == 1
    finally:
        report.server.stop()
    assert cmkit_run_containers(docker_client) == []


class EngineOverTcp:
    """Expose the local engine's unix socket on a TCP port of the host, like a remote DOCKER_HOST."""

    def __init__(self, host: str) -> None:
        self.server = socket.create_server((host, 0))
        self.address = f"tcp://{host}:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect("/var/run/docker.sock")
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


def test_remote_engine_through_docker_host(docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine's host as seen from here: the bridge gateway is this machine's address on docker0.
    gateway = bridge_gateway(docker_client)
    engine = EngineOverTcp(gateway)
    try:
        monkeypatch.setenv("DOCKER_HOST", engine.address)
        document = run(write_flask_bundle(tmp_path))
    finally:
        engine.close()
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    assert document["details"]["server"]["url"].startswith(f"http://{gateway}:")  # type: ignore[index]


def test_cli_json_and_missing_engine_exit_code(docker_client, tmp_path: Path) -> None:
    bundle = write_flask_bundle(tmp_path, "batch_dependent")
    result = subprocess.run(
        [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--json", "--label", f"{TEST_LABEL}={TEST_RUN_ID}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["overallStatus"] == "warning"
    assert document["testingStatus"][SIDE_EFFECTS]["status"] == "warning"
    assert document["details"]["runtime"] == "docker"
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    missing = subprocess.run(
        [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "docker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode == 3 and "no Docker engine answers" in missing.stderr


def test_a_container_that_cannot_start_is_removed(docker_client, tmp_path: Path) -> None:
    # No start_server.sh and an environment without one (cmkit's python3 provides one, so a bare
    # environment here): the engine creates the container, then fails to start its entrypoint.
    # It used to stay behind in "Created" state, one per run.
    bundle = write_flask_bundle(tmp_path)
    (bundle / "start_server.sh").unlink()
    bare = tmp_path / "bare-environment"
    bare.mkdir()
    dockerfile = 'FROM python:3.11-slim\nWORKDIR /opt/code\nENTRYPOINT ["/opt/code/start_server.sh"]\n'
    (bare / "Dockerfile").write_text(dockerfile)
    for _ in range(2):
        document = run(bundle, environment=bare)
        assert statuses(document)[LONG_RUNNING_SERVICE] == "failed"
        assert "could not start" in document["testingStatus"][LONG_RUNNING_SERVICE]["message"]  # type: ignore[index]
        assert cmkit_run_containers(docker_client) == []


def test_failure_paths_leave_no_labelled_container(docker_client, tmp_path: Path) -> None:
    """Every way a run can end badly: bad dataset, server that exits, timeout, crash in the checks."""
    bundle = write_flask_bundle(tmp_path)
    (tmp_path / "short.csv").write_text("a,b,when,y\n1,2\n")
    with pytest.raises(Exception, match="field"):
        run(bundle, dataset=tmp_path / "short.csv")
    assert cmkit_run_containers(docker_client) == []
    slow = write_flask_bundle(tmp_path / "slow", start_script="#!/bin/sh\nsleep 60\n")
    assert statuses(run(slow, startup_timeout=1))[LONG_RUNNING_SERVICE] == "failed"
    assert cmkit_run_containers(docker_client) == []
    broken_environment = tmp_path / "environment"
    broken_environment.mkdir()
    (broken_environment / "Dockerfile").write_text(f"FROM python:3.11-slim\nRUN echo {TEST_RUN_ID} && exit 3\n")
    assert statuses(run(bundle, environment=broken_environment))[LONG_RUNNING_SERVICE] == "failed"
    assert cmkit_run_containers(docker_client) == []


def test_env_flags_reach_the_container_and_host_secrets_do_not(
    docker_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_flask_bundle(tmp_path, start_script=FLASK_START.replace("exec ", "env | sort\nexec ", 1))
    monkeypatch.setenv("DATAROBOT_API_TOKEN", "host-secret-token-123")
    monkeypatch.setenv("FROM_HOST", "host-value")
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "docker", "--json"]
    command += ["--label", f"{TEST_LABEL}={TEST_RUN_ID}", "--url-prefix", "/"]
    command += ["--env", "GREETING=hello world", "--env", "FROM_HOST", "--env", "NOT_SET_ANYWHERE"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)["details"]["logTail"]
    assert "GREETING=hello world" in log and "FROM_HOST=host-value" in log
    assert "NOT_SET_ANYWHERE" not in log
    assert "host-secret-token-123" not in done.stdout + done.stderr
    assert cmkit_run_containers(docker_client) == []
