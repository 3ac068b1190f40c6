"""Tests never write into the user's own cmkit cache folder (tests/conftest.py's TEST_CACHE_DIR)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import platformdirs

from cmkit.paths import cache_dir
from tests.conftest import TEST_CACHE_DIR


def test_cmkit_and_what_it_starts_use_the_tests_cache_folder() -> None:
    assert cache_dir() == TEST_CACHE_DIR
    assert cache_dir() != Path(platformdirs.user_cache_dir("cmkit"))
    seen = subprocess.run(
        [sys.executable, "-c", "from cmkit.paths import cache_dir; print(cache_dir())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.strip() == str(TEST_CACHE_DIR)
