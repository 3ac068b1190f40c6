"""The test dataset: read once with pandas, turned into `predict_no_state` request bodies."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cmkit.errors import InputError


@dataclass
class Dataset:
    """Feature columns (the target removed) as JSON-ready Python lists, one per column."""

    path: Path
    features: pd.DataFrame
    columns: dict[str, list[Any]]
    target_name: str | None

    @property
    def rows(self) -> int:
        return len(self.features)

    def payload(self, columns: dict[str, list[Any]] | None = None) -> bytes:
        return encode_payload(self.columns if columns is None else columns)

    def row_payload(self, index: int) -> bytes:
        return encode_payload({name: [values[index]] for name, values in self.columns.items()})

    def with_null_column(self, name: str) -> bytes:
        return encode_payload({**self.columns, name: [None] * self.rows})


def encode_payload(columns: dict[str, list[Any]]) -> bytes:
    # allow_nan=False: a NaN that slipped through would make the body invalid JSON.
    return json.dumps({"X": columns}, allow_nan=False, separators=(",", ":")).encode()


def _json_column(series: pd.Series) -> list[Any]:
    """Values as JSON types: NaN/NaT -> None, datetimes -> ISO strings, numpy scalars -> Python."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.isoformat() for v in series]
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if hasattr(v, "item") else v for v in values]


def _check_row_lengths(reader: Any, header: list[str], path: Path) -> None:
    """Every row must have as many fields as the header: pandas would pad a short row with NaN."""
    try:
        for row in reader:
            if row and len(row) != len(header):
                raise InputError(
                    f"this row has {len(row)} field(s), the header has {len(header)}",
                    file=path,
                    line=reader.line_num,
                    hint="write one value per column; an empty value is nothing between two commas",
                )
    except csv.Error:
        return  # quoting trouble or a huge field: pandas, which reads the file next, has the final word


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, [])
            except csv.Error as exc:
                raise InputError(f"unreadable CSV header: {exc}", file=path, line=1) from exc
            _check_row_lengths(reader, header, path)
            return header
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 CSV file", file=path, hint="export the dataset as UTF-8 CSV") from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from exc


def _refuse_infinities(features: pd.DataFrame, path: Path) -> None:
    """pandas reads 'inf' as a float that no JSON request body can carry: say where it is."""
    numeric = features.select_dtypes(include="float")
    if numeric.empty:
        return
    infinite = np.isinf(numeric.to_numpy())
    if not infinite.any():
        return
    row, column = (int(i) for i in np.argwhere(infinite)[0])
    raise InputError(
        f"column {str(numeric.columns[column])!r}, data row {row + 1}: '{numeric.iat[row, column]}' "
        "is not a finite number and cannot be sent as JSON",
        file=path,
        hint="leave the value empty (null) or write a finite number",
    )


def load_dataset(path: str | Path, target_name: str | None = None) -> Dataset:
    """Read a CSV test dataset; the target column, if named, must exist and is removed."""
    csv_path = Path(path)
    if not csv_path.is_file():
        raise InputError("dataset not found", file=csv_path, hint="pass --dataset or set validation.input")
    header = _header(csv_path)
    if not header:
        raise InputError("the dataset is empty", file=csv_path, line=1, hint="it needs a header row and data rows")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise InputError(
            f"duplicate column names: {', '.join(duplicates)}", file=csv_path, line=1, hint="rename the columns"
        )
    try:
        frame = pd.read_csv(csv_path, encoding="utf-8-sig", low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"unreadable CSV: {str(exc).splitlines()[0]}", file=csv_path) from exc
    if frame.empty:
        raise InputError("the dataset has no rows", file=csv_path, hint="add data rows under the header")
    if target_name is not None and target_name not in frame.columns:
        raise InputError(
            f"target column '{target_name}' is not in the dataset (columns: {', '.join(map(str, header[:8]))})",
            file=csv_path,
            line=1,
            hint="fix --target-name or inferenceModel.targetName",
        )
    features = frame.drop(columns=[target_name]) if target_name else frame
    _refuse_infinities(features, csv_path)
    columns = {str(name): _json_column(features[name]) for name in features.columns}
    return Dataset(path=csv_path, features=features, columns=columns, target_name=target_name)
