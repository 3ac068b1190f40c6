"""The one unpacker of docker contexts (cmkit/contexts.py) as the client side meets it: refusals are bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cmkit.contexts import ContextLimits, ContextRefused, NotAContext, extract_context
from cmkit.errors import InputError
from cmkit.remoteenv import _extract


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_a_context_is_unpacked(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {"Dockerfile": "FROM python:3.11-slim\n", "app/start.sh": "exit 0\n"})
    extract_context(archive, tmp_path / "out")
    assert (tmp_path / "out" / "app" / "start.sh").read_text() == "exit 0\n"


def test_a_path_out_of_the_context_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "evil.zip", {"Dockerfile": "FROM scratch\n", "../escaped": "x"})
    with pytest.raises(ContextRefused) as refused:
        extract_context(archive, tmp_path / "out")
    assert refused.value.reason == "leaves the model folder" and not refused.value.too_large
    assert isinstance(refused.value, InputError)  # a core error: the CLI's exit 2, never a traceback
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped").exists()


def test_caps_and_archives_that_are_not_contexts_are_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {"Dockerfile": "FROM scratch\n", "a": "1", "b": "2"})
    with pytest.raises(ContextRefused) as refused:
        extract_context(archive, tmp_path / "out", ContextLimits(context_members=2))
    assert refused.value.too_large and refused.value.reason == "it holds more than 2 files and folders"
    assert not (tmp_path / "out").exists()
    with pytest.raises(NotAContext, match="no top-level Dockerfile"):
        extract_context(_zip(tmp_path / "bare.zip", {"app.py": "x"}), tmp_path / "bare")


def test_a_downloaded_context_the_unpacker_refuses_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the emulator's error response escaped `test-local --environment-id` as an internal error.
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / "environments").mkdir(parents=True)
    archive = _zip(tmp_path / "evil.zip", {"Dockerfile": "FROM scratch\n", "../escaped": "x"})
    with pytest.raises(InputError, match="the downloaded docker context is unusable"):
        _extract(archive, "0" * 64)
    not_an_archive = tmp_path / "junk.zip"
    not_an_archive.write_bytes(b"PK junk")
    with pytest.raises(InputError, match="not a valid zip archive"):
        _extract(not_an_archive, "1" * 64)
