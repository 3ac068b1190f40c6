"""An environment's docker context: cmkit's runtime is added where the Dockerfile asks for it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from cmkit.envcontext import RUNTIME_DIR, context_digest, context_files, wants_runtime, zip_context
from cmkit.paths import default_environment_dir


def _environment(folder: Path, dockerfile: str) -> Path:
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "requirements.txt").write_text("flask\n")
    return folder


def test_the_default_environment_gets_the_runtime_source() -> None:
    paths = [f.path for f in context_files(default_environment_dir())]
    assert {"Dockerfile", "requirements.txt", "start_server.sh"} <= set(paths)
    runtime = sorted(p for p in paths if p.startswith("cmkit_runtime/"))
    # Every module, and the datarobot_drum stand-in in its subfolder (loader.offer_drum_shim).
    expected = sorted(f"cmkit_runtime/{p.relative_to(RUNTIME_DIR).as_posix()}" for p in RUNTIME_DIR.rglob("*.py"))
    assert runtime == expected and "cmkit_runtime/server.py" in runtime


def test_the_uploaded_zip_is_self_contained() -> None:
    with zip_context(context_files(default_environment_dir())) as spool, zipfile.ZipFile(spool) as archive:
        names = archive.namelist()
        assert archive.read("cmkit_runtime/loader.py") == (RUNTIME_DIR / "loader.py").read_bytes()
    assert "cmkit_runtime/__init__.py" in names and not any("__pycache__" in n for n in names)


def test_only_a_dockerfile_that_copies_the_runtime_gets_it(tmp_path: Path) -> None:
    plain = _environment(tmp_path / "plain", "FROM python:3.11-slim\nCOPY requirements.txt /tmp/\n")
    asking = _environment(tmp_path / "asking", "FROM python:3.11-slim\nCOPY --chown=1000 cmkit_runtime/ /opt/rt/\n")
    assert not wants_runtime(plain) and [f.path for f in context_files(plain)] == ["Dockerfile", "requirements.txt"]
    assert wants_runtime(asking) and any(f.path.startswith("cmkit_runtime/") for f in context_files(asking))


def test_a_folder_with_its_own_runtime_copy_is_left_as_it_is(tmp_path: Path) -> None:
    folder = _environment(tmp_path / "own", "FROM python:3.11-slim\nCOPY cmkit_runtime/ /opt/rt/\n")
    (folder / "cmkit_runtime").mkdir()
    (folder / "cmkit_runtime" / "__init__.py").write_text("# a fork\n")
    assert not wants_runtime(folder)
    assert [f.path for f in context_files(folder) if f.path.startswith("cmkit_runtime/")] == [
        "cmkit_runtime/__init__.py"
    ]


def test_the_digest_covers_the_runtime(tmp_path: Path) -> None:
    folder = _environment(tmp_path / "env", "FROM python:3.11-slim\nCOPY cmkit_runtime/ /opt/rt/\n")
    files = context_files(folder)
    without_runtime = [f for f in files if not f.path.startswith("cmkit_runtime/")]
    assert context_digest(files) != context_digest(without_runtime)
