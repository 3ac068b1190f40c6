"""The test CSV as a file: its limits, header, row lengths and target column, checked without
pandas and before anything is built or started.

Everything here reads the file with the standard library's csv module in one pass, so a
dataset error (not a CSV, a short row, no rows, a missing target, a 1e6-column header) is exit
2 in well under a second, before the image build that may take minutes (README: "Files a
command reads are bounded"). `cmkit.checks.dataset` then loads the checked file with pandas.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmkit.errors import InputError

# A wide dataset costs every null-value request a body per column: 10,000 columns took 29 s of
# checks, and a header of 1e6 columns took pandas 94 s and 3.2 GB before it found no rows.
MAX_COLUMNS = 20_000
# The header line is read whole by the csv module: bound it before parsing it (20,000 names of
# up to 400 bytes each).
MAX_HEADER_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class CsvShape:
    """What the check found: the column names, in order, and how many data rows follow them."""

    header: list[str]
    rows: int


def check_csv(path: str | Path, target_name: str | None = None) -> CsvShape:
    """A test dataset's file checked whole: InputError naming the file (and line) when unusable."""
    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputError("dataset not found", file=csv_path, hint="pass --dataset or set validation.input")
    shape = read_shape(csv_path)
    header = shape.header
    if not header:
        raise InputError("the dataset is empty", file=csv_path, line=1, hint="it needs a header row and data rows")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise InputError(
            f"duplicate column names: {', '.join(duplicates)}", file=csv_path, line=1, hint="rename the columns"
        )
    if shape.rows == 0:
        raise InputError("the dataset has no rows", file=csv_path, hint="add data rows under the header")
    if target_name is not None and target_name not in header:
        raise InputError(
            f"target column '{target_name}' is not in the dataset (columns: {', '.join(header[:8])})",
            file=csv_path,
            line=1,
            hint="fix --target-name or inferenceModel.targetName",
        )
    return shape


def read_shape(path: Path) -> CsvShape:
    """The header (limits checked before it is parsed) and the number of data rows, each row
    checked to have as many fields as the header."""
    try:
        _check_header_size(path)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, [])
            except csv.Error as exc:
                raise InputError(f"unreadable CSV header: {exc}", file=path, line=1) from exc
            if len(header) > MAX_COLUMNS:
                raise InputError(
                    f"the header has {len(header)} columns; cmkit tests at most {MAX_COLUMNS}",
                    file=path,
                    line=1,
                    hint="test with the columns the model uses",
                )
            return CsvShape(header, _count_rows(reader, header, path))
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 CSV file", file=path, hint="export the dataset as UTF-8 CSV") from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc


def _check_header_size(path: Path) -> None:
    """A first line longer than MAX_HEADER_BYTES is refused from its first bytes, unparsed."""
    with path.open("rb") as handle:
        head = handle.read(MAX_HEADER_BYTES + 1)
    if len(head) > MAX_HEADER_BYTES and b"\n" not in head:
        raise InputError(
            f"the header line is longer than {MAX_HEADER_BYTES // (1024 * 1024)} MiB",
            file=path,
            line=1,
            hint="is this a CSV file? test with the columns the model uses",
        )


def _count_rows(reader: Any, header: list[str], path: Path) -> int:
    """Data rows (blank lines skipped, as pandas does); a row of another length is an error:
    pandas would pad a short row with NaN."""
    rows = 0
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(
                    f"this row has {len(row)} field(s), the header has {len(header)}",
                    file=path,
                    line=reader.line_num,
                    hint="write one value per column; an empty value is nothing between two commas",
                )
            rows += 1
    except csv.Error:
        return max(rows, 1)  # quoting trouble or a huge field: pandas, which reads the file next, has the final word
    return rows
