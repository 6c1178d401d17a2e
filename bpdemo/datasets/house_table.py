"""A table of houses: any CSV file (or a data frame), its columns checked one by one.

`table_to_houses` turns the used columns of a table into a `HouseData`: numeric features (N, F) and
prices in dollars (N,), float64. Every problem is one `DataError` line that says what is wrong,
where (the file's line, or the row), and what to do: a column that is not there (with the closest
name), text where a number is needed, a value that is not finite, a missing value (dropped and
counted, or refused), a target with one value only.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bpdemo.infra.errors import DataError

# What a missing value in a used column does: the row is dropped (and counted), or it is refused.
MISSING = ("drop", "refuse")


@dataclass
class HouseData:
    """Houses ready for training.

    Attributes:
        name: the source, one of `bpdemo.datasets.houses.DATASETS`.
        description: where the rows came from, for printed lines and figure titles ("CSV file
            houses.csv", the file's name only).
        features: the input column names, F of them.
        target: the price column's name.
        x: (N, F) float64 features.
        y: (N,) float64 prices in dollars.
        dropped_rows: rows left out because a value was missing.
        notes: what the user should know about how the table was read (printed by the demo).
    """

    name: str
    description: str
    features: list[str]
    target: str
    x: np.ndarray
    y: np.ndarray
    dropped_rows: int = 0
    notes: list[str] = field(default_factory=list)
    where: str = ""  # where the rows came from, for messages (the path as given); description if ""

    @property
    def source(self) -> str:
        """How error messages name where the rows came from."""
        return self.where or self.description

    @property
    def rows(self) -> int:
        return len(self.y)


def load_csv(
    path: str | Path, features: Sequence[str], target: str, missing: str = "drop"
) -> HouseData:
    """Read `features` and `target` from a CSV file with a header row; see `table_to_houses`."""
    path = Path(path)
    where = f"CSV file {path}"
    if not path.exists():
        raise DataError(f"{where} not found; check the path given to --csv")
    if path.is_dir():
        raise DataError(f"{where} is a folder, not a file; give a CSV file to --csv")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{where} is empty; it needs a header row naming the columns, then one row per house"
        ) from None
    except pd.errors.ParserError as error:
        reason = str(error).strip().splitlines()[-1]
        raise DataError(f"{where} is not a well-formed CSV file: {reason}") from None
    except UnicodeDecodeError:
        raise DataError(f"{where} is not a text file in UTF-8; save it as a UTF-8 CSV") from None
    except OSError as error:
        raise DataError(f"{where} cannot be read: {error.strerror or error}") from None
    if frame.empty:
        raise DataError(f"{where} has a header but no data rows; add one row per house")
    # a title names the file, not the folders it sits in on this computer
    shown = f"CSV file {path.name}"
    return table_to_houses(
        frame, features, target, "csv", where, missing=missing, first_line=2, description=shown
    )


def table_to_houses(
    frame: pd.DataFrame,
    features: Sequence[str],
    target: str,
    name: str,
    where: str,
    missing: str = "drop",
    first_line: int | None = None,
    description: str | None = None,
) -> HouseData:
    """Check and convert the used columns of a table into a `HouseData`.

    Refused with a `DataError`: a column that is not there (the message lists those that are),
    text in a column that must be numeric, a value that is not finite, a missing value when
    `missing="refuse"`, and a target with one value only. `first_line` is the file line of the first
    data row, so messages can point at lines (2 for a CSV file with a header); else rows are counted.
    `where` names the source in messages; `description`, in printed lines and figure titles
    (`where` if None).
    """
    features = list(features)
    if not features:
        raise DataError(f'{where}: no feature columns given; list them with --features "A,B"')
    if len(set(features)) != len(features):
        repeated = sorted({f for f in features if features.count(f) > 1})
        raise DataError(f"{where}: feature {repeated[0]!r} is listed twice in --features")
    if target in features:
        raise DataError(
            f"{where}: {target!r} is both the target and a feature; drop it from --features"
        )
    columns = [find_column(frame, wanted, where) for wanted in [*features, target]]
    table = frame[columns].copy()
    table.columns = [*features, target]

    def position(index: int) -> str:
        return f"line {index + first_line}" if first_line is not None else f"row {index + 1}"

    for column in table.columns:
        table[column] = numeric_column(table[column], column, where, position)

    has_missing = table.isna().any(axis=1).to_numpy()
    dropped = int(has_missing.sum())
    notes = []
    if dropped:
        counts = table.isna().sum()
        per_column = ", ".join(f"{c}: {int(k)}" for c, k in counts.items() if k)
        if missing == "refuse":
            first_column = next(c for c, k in counts.items() if k)
            first_index = int(np.flatnonzero(table[first_column].isna().to_numpy())[0])
            raise DataError(
                f"{where}: {dropped} rows have a missing value ({per_column}; the first in column "
                f"{first_column!r}, {position(first_index)}); fill them in, or set data.missing = "
                '"drop" to leave those rows out'
            )
        if dropped == len(table):
            raise DataError(
                f"{where}: every row has a missing value in the columns used ({per_column}); "
                "choose other columns or fill the gaps"
            )
        notes.append(f"dropped {dropped} of {len(table)} rows with a missing value ({per_column})")
        table = table[~has_missing]

    y = table[target].to_numpy(dtype=np.float64)
    if np.all(y == y[0]):
        raise DataError(
            f"{where}: the target {target!r} has the same value ({y[0]:g}) in every row used; "
            "there is nothing to learn, choose another --target"
        )
    return HouseData(
        name=name,
        description=where if description is None else description,
        where=where,
        features=features,
        target=target,
        x=table[features].to_numpy(dtype=np.float64),
        y=y,
        dropped_rows=dropped,
        notes=notes,
    )


def find_column(frame: pd.DataFrame, wanted: str, where: str) -> str:
    """The table's column named `wanted` (ignoring spaces around names), or a `DataError`."""
    available = [str(c) for c in frame.columns]
    if wanted in available:
        return wanted
    stripped = {c.strip(): c for c in available}
    if wanted.strip() in stripped:
        return stripped[wanted.strip()]
    by_squeezed = {squeeze(c): c for c in available}
    close = by_squeezed.get(squeeze(wanted)) or next(
        iter(difflib.get_close_matches(wanted, available, n=1, cutoff=0.75)), None
    )
    hint = f" (did you mean {close!r}?)" if close else ""
    raise DataError(
        f"{where} has no column {wanted!r}{hint}; its columns are: {', '.join(available)}"
    )


def squeeze(name: str) -> str:
    """A column name in lower case without spaces or punctuation: "Gr Liv Area" -> "grlivarea"."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def numeric_column(values: pd.Series, column: str, where: str, position) -> pd.Series:
    """`values` as float64, NaN where missing; text or an infinite value is a `DataError`."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.float64)
    converted = pd.to_numeric(values, errors="coerce").astype(np.float64)
    text = converted.isna() & values.notna()
    if text.any():
        index = int(np.flatnonzero(text.to_numpy())[0])
        raise DataError(
            f"{where}: column {column!r} holds text where a number is needed, e.g. "
            f"{values.iloc[index]!r} on {position(index)}; features and target must be numbers "
            "(encode categories as numbers first)"
        )
    infinite = np.isinf(converted.to_numpy())
    if infinite.any():
        index = int(np.flatnonzero(infinite)[0])
        raise DataError(
            f"{where}: column {column!r} holds an infinite value on {position(index)}; "
            "features and target must be finite numbers"
        )
    return converted
