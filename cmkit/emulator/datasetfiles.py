"""An uploaded dataset file read as DataRobot's catalog reads it, down to one comma-separated CSV.

DataRobot's catalog takes delimited text (CSV, TSV and other delimiters), compressed with gzip
or bzip2 or packed in a zip or tar archive of one file, besides Excel, SAS, Parquet and Avro
files (docs.datarobot.com, "Dataset requirements", File formats). The emulator reads what the
standard library reads, without another dependency:

- delimited text (`.csv`, `.tsv`, `.tab`, `.dsv`, `.psv`, or whatever an archive holds): the
  delimiter is the one of `,` tab `;` `|` that splits the header line into the most fields (tab
  for `.tsv`/`.tab`), read with the csv module, so every value stays the text it was (nothing is
  parsed into numbers and written back); other files (`.txt`, `.json`: an unstructured model's
  test file) are kept as uploaded, as before;
- compressed or packed, found by their magic bytes, not their names: gzip, bzip2, xz, a zip of
  one file, a tar of one file (and a compressed tar); what they hold is read as above.

Everything downstream (model tests, training data, feature impact, actuals) reads one CSV, so
a file in another form is converted once, at ingestion, into a CSV the catalog keeps beside the
upload; a comma-separated CSV is used as uploaded. Anything else (Excel, SAS, Parquet, Avro, ORC:
a reader the emulator does not carry; an archive of several files; bytes that are not UTF-8 text)
is `Unreadable`, whose one line becomes the dataset's `error` and its status's message.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

CHUNK = 1024 * 1024
MAX_EXPANDED = 5 * 1024**3  # DataRobot Cloud's file limit: a bomb stops here, not at a full disk
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", "\t", ";", "|")
TAB_SUFFIXES = (".tsv", ".tab")
DELIMITED_SUFFIXES = (".csv", ".dsv", ".psv", *TAB_SUFFIXES)  # read for their delimiter when not packed
# Formats DataRobot reads that need a library the emulator does not carry.
OTHER_READERS = {
    ".parquet": "Parquet",
    ".avro": "Avro",
    ".orc": "ORC",
    ".xlsx": "Excel",
    ".xls": "Excel",
    ".xlsm": "Excel",
    ".sas7bdat": "SAS",
    ".xpt": "SAS",
}
GZIP, BZIP2, XZ, ZIP, EMPTY_ZIP = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"PK\x03\x04", b"PK\x05\x06"
COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".bzip2", ".xz")


class Unreadable(Exception):
    """The file is not a dataset the emulator reads; the message says why in one line."""


def as_csv(upload: Path, name: str, workdir: Path) -> Path | None:
    """The upload as one comma-separated UTF-8 CSV: None when it is one as uploaded, else a new
    file in `workdir`. `name` is the upload's file name (it names the format inside archives)."""
    data, inner, unpacked = _unpack(upload, name, workdir)
    suffix = PurePosixPath(inner).suffix.lower()
    if suffix in OTHER_READERS:
        raise Unreadable(
            f"{OTHER_READERS[suffix]} files ({suffix}) are read by DataRobot, not by the emulator, which has no "
            "reader for them: upload the data as CSV (plain, .gz, .bz2 or .zip)"
        )
    if not unpacked and suffix not in DELIMITED_SUFFIXES:
        return None  # a .txt, .json...: kept as uploaded (an unstructured model's test file is any file)
    delimiter = _delimiter(data, suffix)
    if delimiter == "," and not unpacked:
        return None
    return _rewrite(data, delimiter, workdir)


def table_name(name: str) -> str:
    """The CSV's name for an upload that was converted: `train.tar.gz` -> `train.csv`."""
    stem = PurePosixPath(name).name.split(".", 1)[0] or "data"
    return f"{stem}.csv"


def _unpack(upload: Path, name: str, workdir: Path) -> tuple[Path, str, bool]:
    """The file inside any compression or archive (two levels: a .tar.gz), its name, and whether it was packed."""
    path, inner, unpacked = upload, name, False
    for _level in range(2):
        head = _head(path, 512)
        if head.startswith(GZIP):
            path, inner = _expand(gzip.open, path, workdir), _strip(inner)
        elif head.startswith(BZIP2):
            path, inner = _expand(bz2.open, path, workdir), _strip(inner)
        elif head.startswith(XZ):
            path, inner = _expand(lzma.open, path, workdir), _strip(inner)
        elif head.startswith((ZIP, EMPTY_ZIP)):
            path, inner = _from_zip(path, workdir)
        elif head[257:262] == b"ustar":
            path, inner = _from_tar(path, workdir)
        else:
            break
        unpacked = True
    return path, inner, unpacked


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _strip(name: str) -> str:
    """A compressed file's name without its compression suffix (`.tgz` is a tar)."""
    lowered = name.lower()
    if lowered.endswith(".tgz"):
        return name[:-4] + ".tar"
    for suffix in COMPRESSED_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _copy_bounded(source: IO[bytes], target: Path) -> Path:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > MAX_EXPANDED:
                raise Unreadable(f"the file expands to more than {MAX_EXPANDED // 1024**3} GB")
            out.write(chunk)
    return target


def _expand(opener: Callable[..., Any], path: Path, workdir: Path) -> Path:
    target = workdir / f"expanded-{len(list(workdir.iterdir()))}"
    try:
        with opener(path, "rb") as source:
            return _copy_bounded(source, target)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # gzip's BadGzipFile is an OSError
        raise Unreadable(f"the compressed file cannot be read: {_one_line(exc)}") from None


def _one_member(names: list[str], kind: str) -> str:
    files = [name for name in names if not name.startswith("__MACOSX/") and not name.endswith("/")]
    if len(files) != 1:
        listed = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
        raise Unreadable(f"the {kind} holds {len(files)} files ({listed or 'none'}): upload an archive of one file")
    return files[0]


def _from_zip(path: Path, workdir: Path) -> tuple[Path, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            member = _one_member(archive.namelist(), "zip")
            with archive.open(member) as source:
                return _copy_bounded(source, workdir / f"member-{len(list(workdir.iterdir()))}"), member
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:  # encrypted...
        raise Unreadable(f"the zip cannot be read: {_one_line(exc)}") from None


def _from_tar(path: Path, workdir: Path) -> tuple[Path, str]:
    try:
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            name = _one_member([m.name for m in members], "tar")
            source = archive.extractfile(next(m for m in members if m.name == name))
            assert source is not None, "a regular member has content"
            with source:
                return _copy_bounded(source, workdir / f"member-{len(list(workdir.iterdir()))}"), name
    except tarfile.TarError as exc:
        raise Unreadable(f"the tar cannot be read: {_one_line(exc)}") from None


def _delimiter(path: Path, suffix: str) -> str:
    """Tab for .tsv/.tab; else the candidate that splits the header line into the most fields, as
    the csv module reads it, none of them holding a stray quote (a quoted field split apart); the
    comma on a tie."""
    if suffix in TAB_SUFFIXES:
        return "\t"
    header = _head(path, SNIFF_BYTES).split(b"\n", 1)[0].rstrip(b"\r")
    text = header.decode("utf-8-sig", "ignore")  # a bad byte is _rewrite's to report, with its place
    fields = {candidate: _fields(text, candidate) for candidate in DELIMITERS}
    best = max(DELIMITERS, key=lambda candidate: fields[candidate])  # the first on a tie: the comma
    return best if fields[best] > fields[","] else ","


def _fields(line: str, delimiter: str) -> int:
    fields = next(csv.reader([line], delimiter=delimiter), [])
    return 0 if any('"' in field for field in fields) else len(fields)


def _rewrite(path: Path, delimiter: str, workdir: Path) -> Path:
    """The delimited text as a comma CSV, value for value (the csv module quotes what needs it)."""
    target = workdir / "table.csv"
    try:
        with (
            path.open(encoding="utf-8-sig", newline="") as source,
            target.open("w", encoding="utf-8", newline="") as out,
        ):
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(csv.reader(source, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the file is not UTF-8 text (byte {exc.start}): save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise Unreadable(f"the file is not readable delimited text: {_one_line(exc)}") from None
    return target


def _one_line(exc: BaseException) -> str:
    """A library's message on one line (tarfile lists each method it tried on its own line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
