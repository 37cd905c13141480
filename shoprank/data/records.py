"""Rows of JSON-like records (dicts) into Arrow tables, driven by the schema alone.

Why not `pandas.DataFrame(records)`: pandas infers each column's type from the values it happens to
see, so a column that no record of a batch has (a search list has no `candidates`) becomes all-NaN
float64, and Arrow then refuses it against the declared `list<string>`. Here the declared type is
the only type: a field a record lacks is null in that type, whatever the other records hold.

Times arrive as Unix seconds (floats) and are stored as the schema's microsecond timestamps. A
value of the wrong shape (a string where a list is declared, a missing required field) is refused
with the record and the field named, instead of being coerced (Arrow would split a string into a
list of characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa


class RecordError(ValueError):
    """A record does not fit the schema: which record, which field, what was expected."""


def _micros(seconds: Any, where: str, field: str) -> int | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise RecordError(f"{where}: field {field!r} must be Unix seconds (a number), got {seconds!r}")
    return round(seconds * 1_000_000)


def _check(value: Any, field: pa.Field, where: str) -> None:
    if value is None:
        if not field.nullable:
            raise RecordError(f"{where}: required field {field.name!r} ({field.type}) is missing or null")
        return
    if pa.types.is_list(field.type) and not isinstance(value, list | tuple):
        raise RecordError(f"{where}: field {field.name!r} must be a list ({field.type}), "
                          f"got {type(value).__name__}")


def table_from_records(records: Sequence[Mapping[str, Any]], schema: pa.Schema, *, source: str = "records",
                       offset: int = 0) -> pa.Table:
    """The records as a table of exactly `schema`; timestamp fields are read as Unix seconds.

    `source` and `offset` only name where a bad record came from (a file, a segment) in the error."""
    stamp_fields = [f for f in schema if pa.types.is_timestamp(f.type)]
    rows: list[dict[str, Any]] = []
    for index, record in enumerate(records, start=offset):
        where = f"{source}: record {index}"
        if not isinstance(record, Mapping):
            raise RecordError(f"{where}: expected an object of fields, got {type(record).__name__}")
        row = {name: record.get(name) for name in schema.names}
        for field in stamp_fields:
            row[field.name] = _micros(row[field.name], where, field.name)
        for field in schema:
            _check(row[field.name], field, where)
        rows.append(row)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, OverflowError) as err:  # every Arrow conversion error
        if isinstance(err, MemoryError | OSError):
            raise  # not the records' fault
        raise RecordError(f"{source}: records {offset}..{offset + len(rows) - 1} do not fit the schema: {err}") from err


def first_of_each(table: pa.Table, id_column: str) -> tuple[pa.Table, int]:
    """The table with only the first row of each id (in table order), and how many repeats went."""
    seen: set[Any] = set()
    keep: list[int] = []
    for index, value in enumerate(table.column(id_column).to_pylist()):
        if value not in seen:
            seen.add(value)
            keep.append(index)
    return (table if len(keep) == table.num_rows else table.take(keep)), table.num_rows - len(keep)


def concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    """The tables stacked, or the schema's empty table when there are none."""
    tables = list(tables)
    return pa.concat_tables(tables) if tables else schema.empty_table()
