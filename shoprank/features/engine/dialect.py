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

    def materialized(self, body: str) -> str:
        """A CTE's `AS` part, computed once however often it is read: DuckDB otherwise inlines a CTE
        into every reference; Spark has no such keyword and reuses the shared plan by itself."""
        return f"MATERIALIZED ({body})" if self.name == "duckdb" else f"({body})"

    def empty_list(self, element: str) -> str:
        """An empty array of `element` (STRING, DOUBLE, BIGINT), typed, so a COALESCE keeps the list type."""
        if self.name == "duckdb":
            return f"CAST([] AS {'VARCHAR' if element == 'STRING' else element}[])"
        return f"CAST(array() AS ARRAY<{element}>)"

    def top_list(self, fields: dict[str, str], order: list[str], n: int) -> str:
        """An aggregate: the group's `n` first rows by `order` (ascending numeric expressions), as an
        array of structs with `fields`. DuckDB keeps a heap of n per group (`min_by`): its memory is
        the groups times n, where a ROW_NUMBER window would hold and sort every scored pair (on the
        whole of Ta Feng, more than 6 GB). Spark sorts each group's structs (keys lead)."""
        if self.name == "duckdb":
            value = "{" + ", ".join(f"'{name}': {expr}" for name, expr in fields.items()) + "}"
            key = "{" + ", ".join(f"'k{i}': {expr}" for i, expr in enumerate(order)) + "}"
            return f"min_by({value}, {key}, {n})"
        parts = [f"{expr} AS k{i}" for i, expr in enumerate(order)]
        parts += [f"{expr} AS {name}" for name, expr in fields.items()]
        return f"slice(array_sort(collect_list(struct({', '.join(parts)}))), 1, {n})"

    def explode(self, array: str) -> str:
        """A select-list expression: one row per element of `array` (`top_list`'s structs)."""
        return f"UNNEST({array})" if self.name == "duckdb" else f"explode({array})"

    def field(self, array: str, name: str) -> str:
        """The array of one field of an array of structs (`top_list`'s)."""
        if self.name == "duckdb":
            return f"list_transform({array}, lambda x: x.{name})"
        return f"transform({array}, x -> x.{name})"

    def ordered_list(self, value: str, *order: str) -> str:
        """An aggregate: the group's `value`s as an array sorted by `order` (ascending expressions)."""
        if self.name == "duckdb":
            return f"list({value} ORDER BY {', '.join(order)})"
        # Spark's collect_list has no order: sort structs whose leading fields are the keys, then unwrap
        keys = ", ".join(f"{expr} AS k{i}" for i, expr in enumerate(order))
        return f"transform(array_sort(collect_list(struct({keys}, {value} AS v))), x -> x.v)"


DUCKDB = Dialect("duckdb")
SPARK = Dialect("spark")
