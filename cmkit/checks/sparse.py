"""Sparse test data for transform models: a Matrix Market (`.mtx`) file and DRUM's column file.

DRUM takes sparse rows as a Matrix Market file (`drum score --input x.mtx`, or a file part named
`*.mtx` under the form key `X` of `POST /transform/`) and their column names in a separate text
file, one name a line (`--sparse-column-file`, sent as the file part `X.colnames`). The file is
sent as it is written: cmkit reads only its size line (rows, columns) to check the answer's row
count, so the checks need no SciPy. Reading a whole matrix (`cmkit predict`'s output, written as
`drum score` writes it) imports SciPy then, and says in one line how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cmkit.errors import InputError
from cmkit.textfiles import read_limited

if TYPE_CHECKING:
    import pandas as pd

    from cmkit_runtime.target_types import TargetType

MTX_SUFFIX = ".mtx"
MAX_INPUT_BYTES = 1024 * 1024 * 1024  # a test matrix; past this it is a load test, not a check
MAX_NAMES_BYTES = 64 * 1024 * 1024
BANNER = b"%%MatrixMarket"
NEEDS_SCIPY = "reading a sparse (.mtx) answer needs SciPy: pip install scipy"


def is_mtx(path: Path) -> bool:
    return path.suffix.lower() == MTX_SUFFIX


def sparse_input(path: Path, target_type: TargetType) -> bool:
    """Whether `path` is a sparse input (a .mtx); InputError when the model is not a transform,
    the one type DRUM's sparse input reaches a hook of here (test-local's dataset, predict's input)."""
    if not is_mtx(path):
        return False
    if not target_type.transforms:
        raise InputError(
            f"a sparse (.mtx) dataset is for transform models; this one is {target_type.value}",
            file=path,
            hint="pass the rows as a CSV",
        )
    return True


@dataclass(frozen=True)
class SparseDataset:
    """A transform's sparse test input: the file's bytes, its size line, its column names if given."""

    path: Path
    body: bytes
    rows: int
    columns: int
    names: list[str] | None
    names_body: bytes | None  # the column file as written, sent as X.colnames


def mtx_shape(data: bytes) -> tuple[int, int] | str:
    """(rows, columns) from a Matrix Market file's size line, or why it is not one (one line)."""
    lines = data.splitlines()
    if not lines or not lines[0].startswith(BANNER):
        return f"not a Matrix Market file: it must start with {BANNER.decode()}"
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith(b"%"):
            continue
        fields = stripped.split()
        try:
            rows, columns = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            return f"line {number}: the size line must be 'rows columns [entries]', not {stripped[:60]!r}"
        if rows < 0 or columns < 0:
            return f"line {number}: negative size {rows} x {columns}"
        return rows, columns
    return "not a Matrix Market file: it has no size line"


def read_names(data: bytes, path: Path) -> list[str]:
    """DRUM's sparse column file, read as the runtime reads `X.colnames` (one home for the rule)."""
    from cmkit_runtime.transform import BadTransform, column_names

    try:
        return column_names(data) or []
    except BadTransform as exc:
        raise InputError(str(exc), file=path, hint="write one column name a line") from None


def load_sparse(path: Path, names_file: Path | None = None) -> SparseDataset:
    """The `.mtx` file and its column file, checked as DRUM reads them (InputError: exit 2)."""
    body = read_limited(path, MAX_INPUT_BYTES)
    shape = mtx_shape(body)
    if isinstance(shape, str):
        raise InputError(shape, file=path, hint="write it with scipy.io.mmwrite, or pass a CSV")
    rows, columns = shape
    if rows == 0:
        raise InputError("the matrix has no rows", file=path)
    names = names_body = None
    if names_file is not None:
        names_body = read_limited(names_file, MAX_NAMES_BYTES)
        names = read_names(names_body, names_file)
        if len(names) != columns:
            raise InputError(
                f"the column file names {len(names)} columns, {path.name} has {columns}",
                file=names_file,
                hint="one name a line, as many as the matrix's columns (DRUM's --sparse-column-file)",
            )
    return SparseDataset(path, body, rows, columns, names, names_body)


def read_matrix(data: bytes, names: list[str] | None) -> pd.DataFrame:
    """A whole Matrix Market payload as a frame of sparse columns, read as the runtime reads one
    (SciPy needed, imported there)."""
    from cmkit_runtime.transform import NEEDS_SCIPY as RUNTIME_NEEDS_SCIPY
    from cmkit_runtime.transform import BadTransform, read_mtx

    try:
        return read_mtx(data, names)
    except BadTransform as exc:
        raise InputError(NEEDS_SCIPY if str(exc) == RUNTIME_NEEDS_SCIPY else str(exc)) from None
