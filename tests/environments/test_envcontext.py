"""The docker context cmkit sends to `docker build` (cmkit/envcontext.py: tar_context) and what it refuses."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from cmkit.envcontext import RUNTIME_PACKAGE, context_files, context_language, tar_context
from cmkit.errors import InputError
from cmkit.paths import default_environment_dir, r_environment_dir


def test_the_tar_holds_the_context_as_docker_build_sees_it_owned_by_root(tmp_path: Path) -> None:
    folder = tmp_path / "env"
    (folder / "scripts").mkdir(parents=True)
    (folder / "Dockerfile").write_text(f"FROM python:3.11-slim\nCOPY {RUNTIME_PACKAGE}/ /opt/runtime/\n")
    (folder / "scripts" / "entry.sh").write_text("#!/bin/sh\nexec cmkit-runtime serve\n")
    (folder / "scripts" / "entry.sh").chmod(0o755)
    (folder / "notes.md").write_text("not sent\n")
    (folder / ".dockerignore").write_text("*.md\n")
    files = context_files(folder)
    with tar_context(files) as spool, tarfile.open(fileobj=spool) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert set(members) == {file.path for file in files}
        assert {"Dockerfile", "scripts/entry.sh", ".dockerignore"} <= set(members) and "notes.md" not in members
        assert any(name.startswith(f"{RUNTIME_PACKAGE}/") for name in members)  # the Dockerfile copies it
        entry = members["scripts/entry.sh"]
        assert (entry.uid, entry.gid, entry.uname, entry.gname) == (0, 0, "", "")
        assert entry.mode & 0o777 == 0o755  # the script stays executable in the image
        extracted = archive.extractfile(entry)
        assert extracted is not None and extracted.read() == b"#!/bin/sh\nexec cmkit-runtime serve\n"


def test_a_folder_without_a_dockerfile_is_refused_with_the_folder_named(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    with pytest.raises(InputError, match="no Dockerfile in the environment folder") as info:
        context_files(tmp_path / "env")
    assert info.value.file == tmp_path / "env" and info.value.hint == "pass the docker context folder"


def test_a_dockerignore_that_is_not_text_is_one_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "env"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (folder / ".dockerignore").write_bytes(b"\xff\xfe*.md\n")
    with pytest.raises(InputError, match=r"\.dockerignore is not UTF-8 text \(byte 0\)") as info:
        context_files(folder)
    assert info.value.file == folder / ".dockerignore" and info.value.hint == "save it as UTF-8"


def test_an_environment_installing_rpy2_is_an_r_environment(tmp_path: Path) -> None:
    """`env push` records the language DataRobot shows (and the emulator's R templates pick)."""
    assert context_language(r_environment_dir()) == "r"
    assert context_language(default_environment_dir()) == "python"
    for line, language in (("rpy2>=3.5  # R", "r"), ("RPY2[all]==3.5.17", "r"), ("rpy2-arrow==0.1", "python")):
        (tmp_path / "requirements.txt").write_text(f"flask\n{line}\n")
        assert context_language(tmp_path) == language, line
