"""Content hashes of files, remembered across runs while a file is unchanged.

Push and test-local hash every file of a bundle (to diff against the latest version, to tag
the code layer). For a bundle with a large artifact that costs seconds per run; a file whose
path, size, modification time and inode are unchanged keeps its hash. The cache is a JSON file
in cmkit's cache folder (`paths.cache_dir()`), written atomically by `save()`: a caller holds a
`HashCache` and saves it once it is done hashing, so nothing is written behind its back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from pathlib import Path

from cmkit.paths import cache_dir

# Small files are hashed directly: looking them up costs about as much as hashing them.
CACHED_FROM_BYTES = 1024 * 1024
CACHE_FILE = "file-hashes.json"


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (artifacts can be gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """File hashes keyed by (path, size, mtime, inode), loaded on first use, written by `save()`."""

    def __init__(self, file: Path | None = None) -> None:
        self.file = file or cache_dir() / CACHE_FILE
        self._lock = threading.Lock()  # image builds hash from worker threads
        self._entries: dict[str, list[object]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list[object]]:
        if self._entries is None:
            try:
                self._entries = dict(json.loads(self.file.read_text()))
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def sha256_of(self, path: Path) -> str:
        """The file's SHA-256, from the cache when the file has not changed since it was computed."""
        stat = path.stat()
        if stat.st_size < CACHED_FROM_BYTES:
            return file_sha256(path)
        key = str(path.resolve())
        signature: list[object] = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        with self._lock:
            entry = self._load().get(key)
        if entry and entry[:3] == signature:
            return str(entry[3])
        value = file_sha256(path)
        with self._lock:
            self._load()[key] = [*signature, value]
            self._dirty = True
        return value

    def save(self) -> None:
        """Write the cache if it changed (a failure only costs a re-hash next time)."""
        with self._lock:
            if not self._dirty or self._entries is None:
                return
            with contextlib.suppress(OSError):
                self.file.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.file.with_name(f".{self.file.name}.{uuid.uuid4().hex}")
                temporary.write_text(json.dumps(self._entries))
                temporary.replace(self.file)
                self._dirty = False
