"""What reaches a local model server, and that nothing it starts outlives it (issue 13, items 11, 15).

The servers here are real processes: a start_server.sh that prints its environment (or starts a
daemon in a new session) and then serves `GET /` with Python's http.server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmkit.engine.base import target_variables
from cmkit.engine.modelenv import model_environment, parse_env_flags
from cmkit.errors import InputError
from cmkit_runtime.target import Target
from tests.support.bundles import metadata_yaml, write_static_bundle

SECRET = "host-secret-token-7f3a9"
SERVE = 'exec python -m http.server "$PORT" --bind 127.0.0.1\n'
# Double fork with setsid: the classic daemon, in its own session and process group.
DAEMON = """python - "$PWD/daemon.pid" <<'EOF'
import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    sys.exit(0)
with open(sys.argv[1], "w") as out:
    out.write(str(os.getpid()))
time.sleep(600)
EOF
"""

# The same daemon, which then replaces its environment: only a cgroup can still find it.
SCRUBBED_DAEMON = DAEMON.replace(
    'with open(sys.argv[1], "w") as out:\n    out.write(str(os.getpid()))\ntime.sleep(600)',
    "code = \"import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)\"\n"
    "os.execve(sys.executable, [sys.executable, '-c', code, sys.argv[1]], {})",
)


def make_bundle(root: Path, script: str) -> Path:
    return write_static_bundle(root, "#!/bin/sh\n" + script, metadata=metadata_yaml("env-probe", target_name=None))


def run_process(bundle: Path, *flags: str, env: dict[str, str] | None = None) -> dict[str, object]:
    command = [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "process", "--json"]
    command += ["--url-prefix", "/", "--startup-timeout", "30", *flags]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    return json.loads(done.stdout)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# --- item 11 ------------------------------------------------------------------------------------


def test_model_environment_keeps_the_allowlist_the_contract_and_the_user_flags() -> None:
    host = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
        "DATAROBOT_API_TOKEN": SECRET,
        "AWS_SECRET_ACCESS_KEY": "aws",
        "PORT": "1",
    }
    environment = model_environment({"PORT": "8080", "URL_PREFIX": "/p"}, {"GREETING": "hi", "PATH": "/x"}, host)
    assert environment == {
        "PATH": "/x",
        "HOME": "/home/me",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://proxy:3128",
        "REQUESTS_CA_BUNDLE": "/etc/ca.pem",
        "GREETING": "hi",
        "PORT": "8080",
        "URL_PREFIX": "/p",
    }


def test_env_flags_parse_like_docker_run_e() -> None:
    host = {"FROM_HOST": "value", "EMPTY": ""}
    flags = ["A=1", "B=x=y", "C=", "FROM_HOST", "EMPTY", "UNSET"]
    assert parse_env_flags(flags, host) == {"A": "1", "B": "x=y", "C": "", "FROM_HOST": "value", "EMPTY": ""}
    for bad in ("=1", "1A=2", "A B=1", "PORT=1", "URL_PREFIX=/x"):
        with pytest.raises(InputError):
            parse_env_flags([bad], host)


@pytest.mark.slow
def test_the_host_token_does_not_reach_a_process_model(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", "env | sort\n" + SERVE)
    host = {"DATAROBOT_API_TOKEN": SECRET, "LC_ALL": "C.UTF-8", "FROM_HOST": "passed on purpose"}
    document = run_process(bundle, "--env", "GREETING=hello world", "--env", "FROM_HOST", env=host)
    assert document["overallStatus"] == "succeeded", document["testingStatus"]
    log = str(document["details"]["logTail"])  # type: ignore[index]
    assert "GREETING=hello world" in log and "FROM_HOST=passed on purpose" in log
    assert "LC_ALL=C.UTF-8" in log and "\nPATH=" in log and "PORT=" in log
    assert "DATAROBOT_API_TOKEN" not in log


# --- item 15 ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_daemonized_server_process_does_not_outlive_the_run(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle", DAEMON + SERVE)
    document = run_process(bundle)
    pid_file = bundle / "daemon.pid"
    assert pid_file.exists(), "the daemon never started: this test would prove nothing"
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:  # its end may take a moment to be reaped
        time.sleep(0.1)
    try:
        assert not alive(pid), "the daemon outlived test-local"
    finally:
        if alive(pid):
            os.kill(pid, 9)
    processes = document["details"]["processes"]  # type: ignore[index]
    assert pid in processes["escaped"] and processes["survived"] == []  # type: ignore[index]


@pytest.mark.slow
def test_a_daemon_with_a_fresh_environment_is_ended_by_the_cgroup_or_reported(tmp_path: Path) -> None:
    assert SCRUBBED_DAEMON != DAEMON
    bundle = make_bundle(tmp_path / "bundle", SCRUBBED_DAEMON + SERVE)
    document = run_process(bundle)
    pid = int((bundle / "daemon.pid").read_text())
    processes = document["details"]["processes"]  # type: ignore[index]
    try:
        if processes["tracking"] == "cgroup":  # type: ignore[index]
            assert not alive(pid) and processes["survived"] == []  # type: ignore[index]
        else:  # the documented limit: it survives, and the report says so
            assert alive(pid) and pid in processes["survived"]  # type: ignore[index]
            assert any("still running" in w for w in document["details"]["warnings"])  # type: ignore[index]
    finally:
        if alive(pid):
            os.kill(pid, 9)


@pytest.mark.slow
def test_without_a_cgroup_the_marker_still_finds_the_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmkit.engine import processtree
    from cmkit.testlocal import TestLocalConfig, run_test_local

    monkeypatch.setattr(processtree, "_own_cgroup_dir", lambda: None)  # as on a machine without cgroup2
    bundle = make_bundle(tmp_path / "bundle", DAEMON + SERVE)
    config = TestLocalConfig(bundle=bundle, runtime="process", url_prefix="/", startup_timeout=30)
    details = run_test_local(config).to_dict()["details"]
    pid = int((bundle / "daemon.pid").read_text())
    try:
        assert details["processes"]["tracking"] == "environment"
        assert pid in details["processes"]["escaped"] and details["processes"]["survived"] == []
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_stale_empty_cgroups_of_earlier_runs_are_removed() -> None:
    from cmkit.engine import processtree

    parent = processtree._own_cgroup_dir()
    first = processtree.ProcessTracker()
    try:
        if first.cgroup is None:  # no writable cgroup2 here: the marker is the net
            assert first.method in ("environment", "process-group")
            return
        stale, recent = parent / "cmkit-stale-test", parent / "cmkit-recent-test"  # type: ignore[operator]
        stale.mkdir()
        recent.mkdir()
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
        second = processtree.ProcessTracker()
        second.close()
        assert not stale.exists(), "an hour-old empty cgroup must be removed"
        assert recent.exists(), "a fresh one may be about to receive its process"
        recent.rmdir()
    finally:
        first.close()


def test_datarobots_target_variables_name_the_target_when_there_is_one() -> None:
    assert target_variables(Target("textgeneration", (), "answer")) == {
        "TARGET_TYPE": "textgeneration",
        "TARGET_NAME": "answer",
    }
    assert target_variables(Target("anomaly")) == {"TARGET_TYPE": "anomaly"}
