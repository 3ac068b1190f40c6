"""Issue 27 item 12: no credential where a model process can read it. The process runtime's
model is this user's process: it can read /proc/<pid>/environ and /cmdline of cmkit and of the
emulator, which show what they were started with. cmkit takes DATAROBOT_API_TOKEN and
CMKIT_EMULATOR_TOKEN out of its environment at start (cmkit/secretenv.py); the emulator takes
its tokens from a file or that variable instead of its command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cmkit.emulator.server import accepted_tokens
from cmkit.errors import InputError
from tests.support.bundles import metadata_yaml, write_static_bundle

SECRET = "host-secret-token-4f1d9a"

# Writes what every ancestor of the model shows (environment and command line) into a file.
SNOOP = """\
#!/bin/sh
pid=$$
: > "$(dirname "$0")/seen"
while [ "$pid" -gt 1 ]; do
  cat /proc/$pid/environ /proc/$pid/cmdline >> "$(dirname "$0")/seen" 2>/dev/null
  pid=$(awk '{print $4}' /proc/$pid/stat)
done
exit 3
"""


def test_the_emulator_takes_tokens_from_a_file_or_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMKIT_EMULATOR_TOKEN", raising=False)
    tokens = tmp_path / "tokens"
    tokens.write_text("one\n\n  two  \n")
    assert accepted_tokens(("flag",), tokens) == ("flag", "one", "two")
    monkeypatch.setenv("CMKIT_EMULATOR_TOKEN", "from-env")
    assert accepted_tokens((), None) == ("from-env",)
    assert accepted_tokens(("flag",), None) == ("flag",)  # the variable only stands in for none given
    tokens.write_text("\n")
    with pytest.raises(InputError, match="no token in this file"):
        accepted_tokens((), tokens)


@pytest.mark.usefixtures("no_datarobot_configuration")
def test_take_secrets_moves_the_token_out_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: the variable leaves os.environ (and the C environment, zeroed first), and
    `secret` and the API configuration still find it. The subprocess tests below see /proc."""
    from cmkit import secretenv
    from cmkit.api.config import load_api_config

    monkeypatch.setattr(secretenv, "_taken", {})  # what this test takes stays in this test
    monkeypatch.setenv("DATAROBOT_API_TOKEN", SECRET)
    monkeypatch.setenv("DATAROBOT_ENDPOINT", "http://127.0.0.1:9/api/v2")
    monkeypatch.delenv("CMKIT_EMULATOR_TOKEN", raising=False)
    secretenv.take_secrets()
    assert "DATAROBOT_API_TOKEN" not in os.environ
    assert secretenv.secret("DATAROBOT_API_TOKEN") == SECRET and secretenv.secret("CMKIT_EMULATOR_TOKEN") is None
    assert load_api_config().token == SECRET
    assert load_api_config(environ={"DATAROBOT_ENDPOINT": "http://h/api/v2", "DATAROBOT_API_TOKEN": "t"}).token == "t"


@pytest.mark.slow
def test_a_process_model_cannot_read_the_hosts_token_from_any_ancestor(tmp_path: Path) -> None:
    bundle = write_static_bundle(tmp_path / "snoop", SNOOP, metadata=metadata_yaml("snoop"))
    env = {**os.environ, "DATAROBOT_API_TOKEN": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "cmkit", "test-local", str(bundle), "--runtime", "process", "--startup-timeout", "10"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    seen = (bundle / "seen").read_bytes()
    assert b"cmkit" in seen and b"test-local" in seen  # it did read cmkit's own entries
    assert SECRET.encode() not in seen


@pytest.mark.slow
def test_the_emulators_tokens_are_on_neither_its_command_line_nor_its_environment(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("file-token-81b2\n")
    env = {**os.environ, "CMKIT_EMULATOR_TOKEN": "env-token-77c1"}
    env.pop("DATAROBOT_API_TOKEN", None)
    for extra, token in ((["--token-file", str(token_file)], "file-token-81b2"), ([], "env-token-77c1")):
        command = [sys.executable, "-m", "cmkit", "emulator", "--json", "--port", "0", "--runtime", "process"]
        command += ["--data-dir", str(tmp_path / f"data{len(extra)}"), *extra]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert process.stdout is not None
            ready = json.loads(process.stdout.readline())
            proc = Path(f"/proc/{process.pid}")
            shown = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
            assert token.encode() not in shown and b"env-token-77c1" not in shown
            answer = requests.get(ready["endpoint"] + "ping/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, answer.text
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
