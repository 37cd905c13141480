"""The feature job's output held to the Feast schemas before anything is published.

The engines type their results their own way (DuckDB writes naive timestamps and may pick int32
for a small count, Spark writes nullable everything); the Feast views declare one type per feature.
`conform` casts what is safely castable to the declared Arrow schema and refuses the rest, naming
the table, the column and both types, so a query change that drops or retypes a feature fails the
step before the offline sources or the online store see it.
"""

from __future__ import annotations

import pyarrow as pa
from feast.types import Array, Float64, Int64, String

from shoprank.features.definitions import ITEM_SCHEMA, USER_SCHEMA

_ARROW = {Int64: pa.int64(), Float64: pa.float64(), String: pa.string()}
TIMESTAMP = pa.timestamp("us", tz="UTC")  # what the offline sources and Feast's point-in-time join read


def _arrow_type(dtype) -> pa.DataType:
    if isinstance(dtype, Array):
        return pa.list_(_ARROW[dtype.base_type])
    return _ARROW[dtype]


def feast_schema(table: str) -> pa.Schema:
    """The Arrow schema of a Feast offline source: key, `event_timestamp`, the features in order."""
    key, fields = {"user_stats": ("user_key", USER_SCHEMA), "item_stats": ("item_id", ITEM_SCHEMA)}[table]
    return pa.schema([(key, pa.string()), ("event_timestamp", TIMESTAMP),
                      *((f.name, _arrow_type(f.dtype)) for f in fields)])


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    """Only the casts that keep every value: wider ints, ints to doubles, string flavours, timestamp
    units and a naive timestamp read as UTC (the engines compute in UTC), lists of those."""
    if got.equals(want) or pa.types.is_null(got):
        return True
    if pa.types.is_list(want):
        return (pa.types.is_list(got) or pa.types.is_large_list(got)) and _castable(got.value_type, want.value_type)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(got) and got.tz in (None, "UTC", "Etc/UTC", "+00:00")
    if pa.types.is_int64(want):
        return pa.types.is_integer(got) and not (pa.types.is_uint64(got))
    if pa.types.is_float64(want):
        return pa.types.is_floating(got) or pa.types.is_integer(got) or pa.types.is_decimal(got)
    if pa.types.is_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    return False


def conform(data: pa.Table | pa.RecordBatch, table: str, source: str) -> pa.Table:
    """`data` in the Feast schema of `table`, or a ValueError naming `source`, the column and the types."""
    want = feast_schema(table)
    data = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    missing = [name for name in want.names if name not in data.column_names]
    if missing:
        raise ValueError(f"{source}: the {table} rows lack the features {missing} that the Feast view declares")
    columns = []
    for field in want:
        column = data.column(field.name)
        if not _castable(column.type, field.type):
            raise ValueError(f"{source}: {table}.{field.name} is {column.type}, the Feast view declares "
                             f"{field.type}")
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit)).cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column.cast(field.type))
    nulls = [name for name in (want.names[0], "event_timestamp") if data.column(name).null_count]
    if nulls:
        raise ValueError(f"{source}: {table} has rows without {nulls}")
    return pa.Table.from_arrays(columns, schema=want)
