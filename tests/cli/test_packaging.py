"""The wheel carries everything an installed cmkit needs: templates (with dotfiles) and API data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_ships_templates_and_api_reference(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cmkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO / "templates").rglob("*"):
        if path.is_file():
            assert f"cmkit/templates/{path.relative_to(REPO / 'templates').as_posix()}" in names, path
    assert "cmkit/templates/bundles/python/common/.cmkitignore" in names
    assert "cmkit/emulator/api_reference.json" in names
    assert {"cmkit/api/__init__.py", "cmkit/checks/__init__.py", "cmkit/engine/__init__.py"} <= names
