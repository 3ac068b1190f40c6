"""Content hashes of files, remembered across runs while a file is unchanged.

Push and test-local hash every file of a bundle (to diff against the latest version, to tag
the code layer). For a bundle with a large artifact that costs seconds per run; a file whose
path, size, modification time and inode are unchanged keeps its hash. The cache is a JSON file
in the user cache folder (or `$CMKIT_CACHE_DIR`), written atomically.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import platformdirs

# Small files are hashed directly: looking them up costs about as much as hashing them.
CACHED_FROM_BYTES = 1024 * 1024
_lock = threading.Lock()
_entries: dict[str, list[object]] | None = None
_dirty = False


def cache_file() -> Path:
    root = os.environ.get("CMKIT_CACHE_DIR") or platformdirs.user_cache_dir("cmkit")
    return Path(root) / "file-hashes.json"


def _load() -> dict[str, list[object]]:
    global _entries
    if _entries is None:
        try:
            _entries = dict(json.loads(cache_file().read_text()))
        except (OSError, ValueError):
            _entries = {}
    return _entries


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The file's SHA-256, from the cache when the file has not changed since it was computed."""
    global _dirty
    stat = path.stat()
    if stat.st_size < CACHED_FROM_BYTES:
        return _digest(path)
    key = str(path.resolve())
    signature: list[object] = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    with _lock:
        entry = _load().get(key)
    if entry and entry[:3] == signature:
        return str(entry[3])
    value = _digest(path)
    with _lock:
        _load()[key] = [*signature, value]
        _dirty = True
    return value


def save() -> None:
    """Write the cache if it changed (a failure only costs a re-hash next time)."""
    global _dirty
    with _lock:
        if not _dirty or _entries is None:
            return
        target = cache_file()
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
            temporary.write_text(json.dumps(_entries))
            temporary.replace(target)
            _dirty = False


atexit.register(save)
