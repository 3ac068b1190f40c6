"""File hashes are reused while a file is unchanged, and recomputed when it changes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmkit.hashcache import CACHE_FILE, CACHED_FROM_BYTES, HashCache


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_large_files_are_cached_and_rehashed_after_a_change(tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(CACHED_FROM_BYTES + 10))
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    hashes = HashCache()
    assert hashes.file == tmp_path / "cache" / CACHE_FILE
    assert hashes.sha256_of(big) == expected
    hashes.save()
    stored = json.loads(hashes.file.read_text())
    assert stored[str(big.resolve())][3] == expected

    # A new run trusts the cache for the unchanged file: prove it by poisoning the entry.
    stored[str(big.resolve())][3] = "from-the-cache"
    hashes.file.write_text(json.dumps(stored))
    again = HashCache()
    assert again.sha256_of(big) == "from-the-cache"

    big.write_bytes(os.urandom(CACHED_FROM_BYTES + 10))  # new size/mtime: hashed again
    assert again.sha256_of(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_small_files_are_always_hashed(tmp_path: Path) -> None:
    small = tmp_path / "custom.py"
    small.write_text("x = 1\n")
    hashes = HashCache()
    assert hashes.sha256_of(small) == hashlib.sha256(b"x = 1\n").hexdigest()
    hashes.save()
    assert not hashes.file.exists()


def test_an_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    hashes = HashCache()
    hashes.file.parent.mkdir(parents=True)
    hashes.file.write_text("{not json")
    big = tmp_path / "weights.bin"
    big.write_bytes(b"\0" * (CACHED_FROM_BYTES + 1))
    assert hashes.sha256_of(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_nothing_is_written_until_the_holder_saves(tmp_path: Path) -> None:
    """No state at import and no exit hook: a process that hashes without saving leaves no file."""
    big = tmp_path / "weights.bin"
    big.write_bytes(b"\0" * (CACHED_FROM_BYTES + 1))
    script = f"import pathlib, cmkit.hashcache\ncmkit.hashcache.HashCache().sha256_of(pathlib.Path({str(big)!r}))"
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ})
    assert not (tmp_path / "cache" / CACHE_FILE).exists()
