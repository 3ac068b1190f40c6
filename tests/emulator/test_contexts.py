"""cmkit/emulator/contexts.py: the core unpacker's refusals, answered as the emulator always answered them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from cmkit.emulator.contexts import extract_context
from cmkit.emulator.errors import ErrorResponse
from cmkit.emulator.validation import Limits


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def _refused(archive: Path, target: Path, limits: Limits | None = None) -> ErrorResponse:
    with pytest.raises(ErrorResponse) as refused:
        extract_context(archive, target, limits)
    return refused.value


def test_each_refusal_keeps_its_status_message_and_field(tmp_path: Path) -> None:
    dockerfile = {"Dockerfile": "FROM scratch\n"}
    escape = _refused(_zip(tmp_path / "evil.zip", {**dockerfile, "../escaped": "x"}), tmp_path / "a")
    assert (escape.status, escape.message) == (422, "dockerContext '../escaped' leaves the model folder")
    assert escape.errors == {"dockerContext": "leaves the model folder"}
    many = _refused(_zip(tmp_path / "many.zip", {**dockerfile, "x": "1"}), tmp_path / "b", Limits(context_members=1))
    assert (many.status, many.message) == (413, "Invalid docker context: it holds more than 1 files and folders")
    assert many.errors == {"dockerContext": "it holds more than 1 files and folders"}
    bare = _refused(_zip(tmp_path / "bare.zip", {"app.py": "x"}), tmp_path / "c")
    assert (bare.status, bare.message) == (422, "Invalid docker context: the archive has no top-level Dockerfile")
    assert bare.errors == {"dockerContext": "the archive has no top-level Dockerfile"}
    clash = _refused(_zip(tmp_path / "clash.zip", {**dockerfile, "a": "1", "a/b": "2"}), tmp_path / "d")
    assert (clash.status, clash.message) == (422, "dockerContext clash: 'a' is a file, so 'a/b' cannot be inside it")
