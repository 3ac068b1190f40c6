"""File hashes are reused while a file is unchanged, and recomputed when it changes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cmkit import hashcache


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hashcache, "_entries", None)
    monkeypatch.setattr(hashcache, "_dirty", False)


def test_large_files_are_cached_and_rehashed_after_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(hashcache.CACHED_FROM_BYTES + 10))
    expected = hashlib.sha256(big.read_bytes()).hexdigest()
    assert hashcache.sha256_of(big) == expected
    hashcache.save()
    stored = json.loads(hashcache.cache_file().read_text())
    assert stored[str(big.resolve())][3] == expected

    # A new process trusts the cache for the unchanged file: prove it by poisoning the entry.
    stored[str(big.resolve())][3] = "from-the-cache"
    hashcache.cache_file().write_text(json.dumps(stored))
    monkeypatch.setattr(hashcache, "_entries", None)
    assert hashcache.sha256_of(big) == "from-the-cache"

    big.write_bytes(os.urandom(hashcache.CACHED_FROM_BYTES + 10))  # new size/mtime: hashed again
    assert hashcache.sha256_of(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_small_files_are_always_hashed(tmp_path: Path) -> None:
    small = tmp_path / "custom.py"
    small.write_text("x = 1\n")
    assert hashcache.sha256_of(small) == hashlib.sha256(b"x = 1\n").hexdigest()
    hashcache.save()
    assert not hashcache.cache_file().exists()


def test_an_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    hashcache.cache_file().parent.mkdir(parents=True)
    hashcache.cache_file().write_text("{not json")
    big = tmp_path / "weights.bin"
    big.write_bytes(b"\0" * (hashcache.CACHED_FROM_BYTES + 1))
    assert hashcache.sha256_of(big) == hashlib.sha256(big.read_bytes()).hexdigest()
