"""The few SQL spellings DuckDB and Spark SQL disagree on, so the feature queries are written once.

Everything else in `features/engine/queries.py` is the SQL both engines accept as it is (CTEs,
window functions, `INTERVAL n DAYS`, `COUNT(DISTINCT ...)`); only these expressions differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Dialect:
    name: str

    def timestamp(self, at: pd.Timestamp) -> str:
        """A UTC instant as a literal both engines compare with the events' timestamps (sessions run in UTC)."""
        utc = at.tz_convert("UTC") if at.tzinfo else at
        return f"TIMESTAMP '{utc.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def epoch_seconds(self, expr: str) -> str:
        if self.name == "duckdb":
            return f"(epoch_us(CAST({expr} AS TIMESTAMPTZ)) / 1e6)"  # the events may be ns-precise
        return f"(unix_micros({expr}) / 1e6)"

    def empty_list(self, element: str) -> str:
        """An empty array of `element` (STRING, DOUBLE, BIGINT), typed, so a COALESCE keeps the list type."""
        if self.name == "duckdb":
            return f"CAST([] AS {'VARCHAR' if element == 'STRING' else element}[])"
        return f"CAST(array() AS ARRAY<{element}>)"

    def ordered_list(self, value: str, *order: str) -> str:
        """An aggregate: the group's `value`s as an array sorted by `order` (ascending expressions)."""
        if self.name == "duckdb":
            return f"list({value} ORDER BY {', '.join(order)})"
        # Spark's collect_list has no order: sort structs whose leading fields are the keys, then unwrap
        keys = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(order))
        return f"transform(array_sort(collect_list(struct({keys}, {value} AS v))), x -> x.v)"

    def int_div(self, a: str, b: str) -> str:
        """Integer division of BIGINTs (`/` is a DOUBLE division in both)."""
        return f"({a} // {b})" if self.name == "duckdb" else f"({a} DIV {b})"

    def nth_largest(self, value: str, n: int) -> str:
        """An aggregate: the group's `n`-th largest `value`, duplicates counted (its smallest if it has
        fewer than `n`)."""
        if self.name == "duckdb":
            return f"list_min(max({value}, {int(n)}))"
        return f"array_min(slice(sort_array(collect_list({value}), false), 1, {int(n)}))"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")
