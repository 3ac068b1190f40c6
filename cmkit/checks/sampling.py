"""Which rows the row-wise checks send: sideEffects' rows, and the rows of each null-column request.

nullValueImputation sends one request per column with that column entirely null. What the
check proves (DataRobot: the model copes with a feature that is missing; DRUM's local version:
prediction still succeeds) is decided by that column being null, in every row sent: a crash on
nulls, a NaN output or a wrong row count shows on any row. All rows of a wide dataset add
nothing but time: the check sends rows x columns x columns values. So a request carries at
most `REQUEST_BUDGET` values, and the whole check at most `CHECK_BUDGET` (but never fewer than
`MIN_NULL_ROWS` rows); beyond that, a bounded sample: the rows that already hold missing
values (a null among other nulls is the case models get wrong), then rows spread evenly over
the dataset. `--null-rows all` sends every row; `--null-rows N` caps the rows at N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# NumPy and pandas are imported where used: the CLI parses --null-rows with this module, and
# importing them then (0.7 s) would delay the server's start instead of overlapping with it.
if TYPE_CHECKING:
    import pandas as pd

REQUEST_BUDGET = 100_000  # values in one null-column request
CHECK_BUDGET = 50_000_000  # values over all of them (columns x rows x columns)
MIN_NULL_ROWS = 3  # however wide the dataset, a null-column request carries at least these rows
AUTO, ALL = "auto", "all"


def spread(rows: int, limit: int) -> list[int]:
    """Up to `limit` row indices spread evenly over `rows` rows, the first and last included."""
    import numpy as np

    count = max(1, min(rows, limit))
    return sorted(set(np.linspace(0, rows - 1, count).round().astype(int).tolist()))


@dataclass(frozen=True)
class RowSelection:
    indices: list[int] | None  # None: every row
    rows: int  # how many rows each request carries

    @property
    def sampled(self) -> bool:
        return self.indices is not None


def null_row_limit(rows: int, columns: int, setting: str | int) -> int:
    """How many rows a null-column request may carry under `setting` (auto, all or a number)."""
    if setting == ALL:
        return rows
    if setting == AUTO:
        columns = max(1, columns)
        return max(MIN_NULL_ROWS, min(REQUEST_BUDGET // columns, CHECK_BUDGET // columns**2))
    return int(setting)


def null_check_rows(features: pd.DataFrame, setting: str | int = AUTO) -> RowSelection:
    rows, columns = features.shape
    limit = null_row_limit(rows, columns, setting)
    if rows <= limit:
        return RowSelection(None, rows)
    import numpy as np

    missing = features.isna().sum(axis=1).to_numpy()
    # Rows with the most missing values first (stable: earlier rows win ties), a quarter at most.
    with_nulls = [int(i) for i in np.argsort(-missing, kind="stable")[: limit // 4] if missing[i] > 0]
    rest = np.setdiff1d(np.arange(rows), with_nulls)  # the other rows, in order
    chosen = sorted([*with_nulls, *rest[spread(len(rest), limit - len(with_nulls))].tolist()])
    return RowSelection(chosen, len(chosen))


def parse_null_rows(text: str) -> str | int:
    """`auto`, `all` or a positive number of rows; ValueError otherwise."""
    value = text.strip().lower()
    if value in (AUTO, ALL):
        return value
    number = int(value)
    if number < 1:
        raise ValueError(text)
    return number
