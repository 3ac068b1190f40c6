"""The emulator's state: resource documents in SQLite, uploaded content in a blob store on disk.

Every resource (model, version, environment, test...) is one row: its kind, id, parent id, a
creation sequence number for stable ordering, and two JSON documents: `doc`, the fields the API
shows, and `internal`, what only the emulator needs (blob hashes, Docker image ids, log paths).

One connection serves all threads behind a lock: an emulator's write rate is tiny, and
serialising writes is what makes read-modify-write steps (the next version number of a model)
safe. Uploads never happen inside the lock: they are streamed to the blob store first.

Blobs are content-addressed (`blobs/ab/abcdef...`), so a version derived by PATCH shares the
unchanged files of its parent without copying them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, cast

from cmkit.emulator.documents import DocT, Internal

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS resources_by_parent ON resources (kind, parent, seq);
-- A model's version numbers are unique: the safety net under the numbering transaction.
CREATE UNIQUE INDEX IF NOT EXISTS version_numbers ON resources (
    parent, json_extract(doc, '$.versionMajor'), json_extract(doc, '$.versionMinor')
) WHERE kind = 'version';
"""
CHUNK = 1024 * 1024


class Kind(str, Generic[DocT]):
    """A kind of resource (its name in the `kind` column), typed by the shape of its document.

    A `str`, so a kind names its logs and rows as the plain name did: `Kind[CustomModel]("model")`
    makes the store answer `Resource[CustomModel]` for it.
    """


@dataclass
class Resource(Generic[DocT]):
    kind: str
    id: str
    parent: str | None
    seq: int
    doc: DocT
    internal: Internal = field(default_factory=Internal)
    deleted: bool = False


class Store:
    """SQLite state + blob store under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusively(self.data_dir / "emulator.lock")
        self.blobs = BlobStore(self.data_dir / "blobs", self.data_dir / "tmp")
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.data_dir / "emulator.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.close()  # releases the data dir for the next emulator

    def path(self, *parts: str) -> Path:
        """A folder under the data directory, created on first use."""
        folder = self.data_dir.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Everything inside commits together or not at all; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    # -- documents -----------------------------------------------------------------------------

    def insert(
        self,
        kind: Kind[DocT],
        ident: str,
        doc: DocT,
        parent: str | None = None,
        internal: Internal | None = None,
    ) -> Resource[DocT]:
        with self.transaction():
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM resources").fetchone()[0]
            self._db.execute(
                "INSERT INTO resources (kind, id, parent, seq, doc, internal) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, ident, parent, seq, _dumps(doc), _dumps(internal or {})),
            )
        return Resource(kind, ident, parent, seq, doc, internal or Internal())

    def get(self, kind: Kind[DocT], ident: str, include_deleted: bool = False) -> Resource[DocT] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM resources WHERE kind = ? AND id = ?", (kind, ident)).fetchone()
        resource = _resource(row) if row else None
        if resource and resource.deleted and not include_deleted:
            return None
        return resource

    def list(self, kind: Kind[DocT], parent: str | None = None, include_deleted: bool = False) -> list[Resource[DocT]]:
        """Resources of a kind (under a parent), oldest first."""
        query = "SELECT * FROM resources WHERE kind = ?"
        args: list[Any] = [kind]
        if parent is not None:
            query += " AND parent = ?"
            args.append(parent)
        if not include_deleted:
            query += " AND deleted = 0"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [_resource(row) for row in rows]

    def latest(self, kind: Kind[DocT], parent: str) -> Resource[DocT] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM resources WHERE kind = ? AND parent = ? AND deleted = 0 ORDER BY seq DESC LIMIT 1",
                (kind, parent),
            ).fetchone()
        return _resource(row) if row else None

    def save(self, resource: Resource[DocT]) -> Resource[DocT]:
        with self.transaction():
            self._db.execute(
                "UPDATE resources SET doc = ?, internal = ?, deleted = ? WHERE kind = ? AND id = ?",
                (_dumps(resource.doc), _dumps(resource.internal), int(resource.deleted), resource.kind, resource.id),
            )
        return resource

    def update(
        self, kind: Kind[DocT], ident: str, doc: DocT | None = None, internal: Internal | None = None
    ) -> Resource[DocT] | None:
        """Merge fields into a resource's documents atomically; None when it does not exist.

        `doc` holds some of the kind's fields (the document types list every field as optional).
        """
        with self.transaction():
            resource = self.get(kind, ident, include_deleted=True)
            if resource is None:
                return None
            resource.doc = cast(DocT, {**resource.doc, **(doc or {})})
            resource.internal.update(internal or Internal())
            return self.save(resource)

    def delete(self, kind: str, ident: str) -> None:
        """Soft delete: the API no longer shows it, but what refers to it keeps working."""
        with self.transaction():
            self._db.execute("UPDATE resources SET deleted = 1 WHERE kind = ? AND id = ?", (kind, ident))

    def purge(self, kind: str, ident: str) -> None:
        """Hard delete (permanent deletion): the row is gone and the id may be used again."""
        with self.transaction():
            self._db.execute("DELETE FROM resources WHERE kind = ? AND id = ?", (kind, ident))

    def find(self, kind: Kind[DocT], field_name: str, value: object) -> Resource[DocT] | None:
        """The first live resource whose doc has `field_name == value`."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM resources WHERE kind = ? AND deleted = 0 AND json_extract(doc, ?) = ? ORDER BY seq",
                (kind, f"$.{field_name}", value),
            ).fetchone()
        return _resource(row) if row else None

    # -- settings ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _lock_exclusively(path: Path) -> IO[str]:
    """Hold an exclusive lock on the data dir: two emulators would each recover the other's jobs.

    The lock is released when the file closes, including when the process dies.
    """
    handle = path.open("a")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; running two emulators there is on the user
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise DataDirInUse(f"another emulator is using {path.parent}") from None
    return handle


class DataDirInUse(OSError):
    """Another emulator process holds the data directory."""


def _dumps(doc: Mapping[str, object]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _resource(row: sqlite3.Row) -> Resource[Any]:
    # The row's JSON is the document its kind's type describes: the store wrote it from one.
    return Resource(
        kind=row["kind"],
        id=row["id"],
        parent=row["parent"],
        seq=row["seq"],
        doc=json.loads(row["doc"]),
        internal=json.loads(row["internal"]),
        deleted=bool(row["deleted"]),
    )


# -- blobs ---------------------------------------------------------------------------------------


class HashingFile:
    """A temporary file in the blob store's staging folder that hashes what is written to it.

    Uploads are written here as they arrive (werkzeug's multipart parser calls `write` chunk by
    chunk), so memory stays flat whatever the upload size and ingesting the blob is a rename.
    """

    def __init__(self, staging: Path) -> None:
        handle, name = tempfile.mkstemp(dir=staging, prefix="upload-")
        self.path = Path(name)
        self._file: IO[bytes] = os.fdopen(handle, "w+b")
        self._digest = hashlib.sha256()
        self.size = 0
        self.ingested = False

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._file.write(data)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readline(self, size: int = -1) -> bytes:
        return self._file.readline(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self._file.read(CHUNK), b"")

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        """Close, and remove the staging file unless the blob store took it."""
        if not self._file.closed:
            self._file.close()
        if not self.ingested:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int


class BlobStore:
    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def new_upload(self, staging: Path | None = None) -> HashingFile:
        return HashingFile(staging or self.staging)

    def ingest(self, upload: HashingFile) -> Blob:
        """Move a finished upload into place (or drop it when that content is already stored)."""
        upload.flush()
        blob = Blob(upload.sha256(), upload.size)
        target = self.path(blob.sha256)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.path, target)
            upload.ingested = True
        upload.close()
        return blob

    def put_file(self, source: Path) -> Blob:
        """Store a local file's content (used for seeded content, not uploads)."""
        upload = self.new_upload()
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                upload.write(chunk)
        return self.ingest(upload)

    def open(self, sha256: str) -> IO[bytes]:
        return self.path(sha256).open("rb")

    def read_text(self, sha256: str) -> str:
        return self.path(sha256).read_text(encoding="utf-8")
