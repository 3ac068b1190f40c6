"""tools/action_suite.py: a fetched Action's functional suite run against a fresh emulator.

The real suite needs the Action (GitHub, unreachable from CI); here a stand-in with the
Action's layout (src/dr_client.py, tests/functional/) checks what the script does around it:
the emulator it starts is the one the suite's environment names, a clone of a git source is
run at its ref, failures are listed, and the emulator is gone afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bundles import write_files

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "action_suite.py"
SUITE = '''
import os, requests

def headers():
    return {"Authorization": f"Token {os.environ['DATAROBOT_API_TOKEN']}"}

def test_the_emulator_answers_the_session_fixtures_first_request():
    url = os.environ["DATAROBOT_WEBSERVER"] + "deployments/"
    assert requests.get(url, headers=headers(), timeout=10).json()["data"] == []

def test_a_failure_is_listed():
    assert os.environ["DATAROBOT_WEBSERVER"] == "elsewhere"
'''


def fake_action(root: Path) -> Path:
    write_files(
        root,
        {
            "src/dr_client.py": "",
            "src/requirements.txt": "requests\n",
            "tests/__init__.py": "",
            "tests/functional/__init__.py": "",
            "tests/functional/test_fake.py": SUITE,
        },
    )
    return root


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), "--python", sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_a_checked_out_action_runs_against_a_fresh_emulator(tmp_path: Path) -> None:
    done = run(str(fake_action(tmp_path / "action")), "--workdir", str(tmp_path / "work"))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "passed 1 of 2"
    assert "failed: tests.functional.test_fake::test_a_failure_is_listed" in lines
    assert "the emulator did not start" not in done.stderr


def test_a_git_source_is_cloned_at_its_ref(tmp_path: Path) -> None:
    source = fake_action(tmp_path / "repo")
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "suite"], check=True)
    ref = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (source / "tests" / "functional" / "test_fake.py").write_text("def test_later():\n    pass\n")
    done = run(str(source), "--ref", ref, "--workdir", str(tmp_path / "work"), "--", "-k", "answers")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "passed 1 of 1"  # the commit's suite, not the edit


def test_an_unusable_source_is_exit_2(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nothing-here"), "--workdir", str(tmp_path / "work"))
    assert done.returncode == 2 and "could not be run" in done.stderr
