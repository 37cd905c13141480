"""Canonical parquet written by this project (or a shop that already speaks the contract).

Reading is strict: a missing folder, a file that is not parquet (e.g. truncated in transfer) or a
column whose type breaks the contract raises `InputError` naming the file and column. Types of
the same family are cast silently (int32 -> int64, timestamp[ns] -> timestamp[us, UTC],
large_string or dictionary -> string): writers differ there and no value changes meaning.
`schema_problems` is shared with the validation gate, which reports the same problems as
findings instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

from shoprank.data.errors import InputError
from shoprank.data.schema import EVENTS, ITEMS, TABLES, USERS

_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _family(t: pa.DataType) -> str:
    if pat.is_dictionary(t):
        return _family(t.value_type)
    if pat.is_null(t):
        return "null"
    if pat.is_integer(t):
        return "integer"
    if pat.is_floating(t):
        return "float"
    if pat.is_string(t) or pat.is_large_string(t):
        return "string"
    if pat.is_timestamp(t):
        return "timestamp"
    if pat.is_boolean(t):
        return "boolean"
    return str(t)


def compatible(found: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a column of type `found` can stand for `expected` without changing meaning."""
    have, want = _family(found), _family(expected)
    return have == want or have == "null" or (want == "float" and have == "integer")


def schema_problems(found: pa.Schema, expected: pa.Schema) -> list[tuple[str, str, str, str]]:
    """(column, problem, expected, found) for every way `found` breaks the canonical `expected`."""
    problems = []
    for field in expected:
        index = found.get_field_index(field.name)
        if index < 0:
            problems.append((field.name, "missing column", f"a {field.type} column", "no such column"))
        elif not compatible(found.field(index).type, field.type):
            problems.append((field.name, "wrong column type", str(field.type), str(found.field(index).type)))
    return problems


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast to the canonical schema (call only after `schema_problems` found none)."""
    columns = []
    for field in schema:
        column = table[field.name]
        if pat.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pat.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def open_parquet(path: Path) -> pq.ParquetFile:
    """A parquet file, or InputError saying it is not one (truncated, empty, another format)."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        size = path.stat().st_size if path.exists() else 0
        raise InputError(path, f"not a readable parquet file ({size:,} bytes: {str(err).splitlines()[0]})",
                         expected="a complete parquet file") from None


def table_files(root: Path, table: str) -> list[Path]:
    """The parquet files of one table, events in date-partition order (hive `date=YYYY-MM-DD`)."""
    folder = Path(root) / table
    if not folder.is_dir():
        raise InputError(folder, f"the canonical folder has no {table}/ folder",
                         expected=f"a folder with {', '.join(f'{t}/' for t in TABLES)}")
    # hidden files/folders *inside* the table (writers' temp files) are skipped; the folders above it
    # may be hidden (a home like ~/.shoprank) and must not hide the whole table
    files = [p for p in folder.rglob("*.parquet")
             if not any(part.startswith(".") for part in p.relative_to(folder).parts)]

    def key(p: Path) -> tuple[str, str]:
        match = _PARTITION.match(p.parent.name)
        return (match.group(1) if match else "", str(p))

    return sorted(files, key=key)


def partition_date(path: Path) -> str | None:
    """`YYYY-MM-DD` of a file under a `date=` partition folder, else None."""
    match = _PARTITION.match(path.parent.name)
    return match.group(1) if match else None


def read_checked(path: Path, schema: pa.Schema, *, batch_rows: int | None = None) -> Iterator[pa.Table]:
    """A parquet file as canonical tables (one, or batches of `batch_rows`); InputError on contract breaks."""
    pf = open_parquet(path)
    problems = schema_problems(pf.schema_arrow, schema)
    if problems:
        column, problem, expected, found = problems[0]
        raise InputError(path, problem, field=column, expected=expected, found=found)
    names = [f.name for f in schema]
    try:
        if batch_rows is None:
            yield conform_table(pf.read(columns=names), schema)
            return
        for batch in pf.iter_batches(batch_size=batch_rows, columns=names):
            yield conform_table(pa.Table.from_batches([batch]), schema)
    except (pa.ArrowException, OSError) as err:
        raise InputError(path, f"unreadable parquet data ({str(err).splitlines()[0]})",
                         expected="a complete parquet file") from None


class CanonicalSource:
    """A folder with `events/`, `items/`, `users/` parquet (events may be hive-partitioned)."""

    name = "canonical"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(self.path, "no such folder" if not self.path.exists() else "is not a folder",
                             expected="a canonical folder with events/, items/, users/")

    def _table(self, table: str, schema: pa.Schema) -> pd.DataFrame:
        parts = [t for path in table_files(self.path, table) for t in read_checked(path, schema)]
        return (pa.concat_tables(parts) if parts else schema.empty_table()).to_pandas()

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        for path in table_files(self.path, "events"):
            for table in read_checked(path, EVENTS, batch_rows=chunk_rows):
                yield table.to_pandas()

    def items(self) -> pd.DataFrame:
        return self._table("items", ITEMS)

    def users(self) -> pd.DataFrame:
        return self._table("users", USERS)
