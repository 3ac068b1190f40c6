"""The real `pre-commit` tool runs cmkit's hooks from this repository against a throwaway repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.bundles import metadata_yaml, write_static_bundle

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def write_bundle(root: Path, *, executable: bool, requirements: str) -> None:
    start, metadata = "#!/bin/sh\nexec gunicorn server:app\n", metadata_yaml("m", target_name=None)
    write_static_bundle(root, start, metadata=metadata, requirements=requirements, mode=0o755 if executable else 0o644)


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    git(repo, "init", "-q")
    write_bundle(repo / "good", executable=True, requirements="numpy==2.0\n")
    write_bundle(repo / "broken", executable=False, requirements="numpy==2.0\nfoo!=1.0\n")
    git(repo, "add", "-A")
    return repo


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(model_repo: Path, home: Path, hook: str, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), hook, "--files", *files],
        cwd=model_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_lint_hook_passes_a_good_bundle(model_repo: Path, pre_commit_home: Path) -> None:
    result = try_repo(model_repo, pre_commit_home, "cmkit-lint", "good/start_server.sh", "good/requirements.txt")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout


def test_lint_hook_fails_a_broken_bundle(model_repo: Path, pre_commit_home: Path) -> None:
    result = try_repo(model_repo, pre_commit_home, "cmkit-lint", "broken/model-metadata.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Failed" in result.stdout
    assert "[start-script-not-executable]" in result.stdout
    assert "broken/requirements.txt:2" in result.stdout


def test_deps_hook(model_repo: Path, pre_commit_home: Path) -> None:
    good = try_repo(model_repo, pre_commit_home, "cmkit-deps", "good/requirements.txt")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = try_repo(model_repo, pre_commit_home, "cmkit-deps", "broken/requirements.txt", "broken/start_server.sh")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "'!=1.0'" in bad.stdout and "broken/requirements.txt:2" in bad.stdout
