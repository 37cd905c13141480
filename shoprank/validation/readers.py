"""What the gate reads: a batch as canonical Arrow chunks plus where every row came from.

Two readers give the gate the same shape of input:
- `CanonicalBatch`: a canonical folder (the staged nightly batch). Files are read one by one in
  date-partition order, in record batches, and concatenated into chunks of about `chunk_rows`
  rows, so memory holds one chunk. A file whose schema breaks the contract is reported (not
  read further) instead of stopping the whole batch; a file that is not parquet at all is an
  `InputError`.
- `SourceBatch`: a raw source file through its adapter (Ta Feng, REES46), chunk by chunk. Rows
  keep their CSV line numbers.

Every row gets an integer key; `Provenance` turns a key back into "file line N" / "file row N"
for the report, even after the chunk itself is gone (duplicates are found at the end of a day).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from shoprank.data.errors import InputError, InputIssue
from shoprank.data.schema import EVENTS, ITEMS, USERS
from shoprank.data.sources import open_source
from shoprank.data.sources.canonical import (
    conform_table,
    open_parquet,
    partition_date,
    schema_problems,
    table_files,
)

SCHEMAS = {"events": EVENTS, "items": ITEMS, "users": USERS}


def nullable(schema: pa.Schema) -> pa.Schema:
    """The gate reads data that may break the contract; nulls are judged, not refused at read time."""
    return pa.schema([f.with_nullable(True) for f in schema])


@dataclass
class Provenance:
    """Key ranges -> (file, unit, first position). Position of key k = k - start + base."""

    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)

    def add(self, start: int, stop: int, file: str, unit: str, base: int) -> None:
        i = bisect.bisect_right(self.starts, start)  # kept sorted: tables are read in any order
        self.starts.insert(i, start)
        self.stops.insert(i, stop)
        self.files.insert(i, file)
        self.units.insert(i, unit)
        self.bases.insert(i, base)

    def locate(self, key: int) -> str:
        i = bisect.bisect_right(self.starts, key) - 1
        if i < 0 or key >= self.stops[i]:
            return f"row key {key}"
        return f"{self.files[i]} {self.units[i]} {key - self.starts[i] + self.bases[i]}"


@dataclass
class SchemaProblem:
    table: str
    file: str
    column: str
    problem: str
    expected: str
    found: str
    rows: int


@dataclass
class EventChunk:
    """Canonical events plus one key per row; days before `complete_before` will not appear again."""

    table: pa.Table
    keys: np.ndarray
    complete_before: str | None


@dataclass
class TableRead:
    """A whole (small) table: items or users."""

    table: pa.Table
    keys: np.ndarray
    label: str


class CanonicalBatch:
    """A canonical folder: events/ (hive-partitioned by date or not), items/, users/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder" if not self.root.exists() else "is not a folder",
                             expected="a canonical batch folder with events/, items/, users/")
        self.label = str(self.root)
        self.provenance = Provenance()
        self.schema_problems: list[SchemaProblem] = []
        self.issues: list[InputIssue] = []
        self.has_catalogue = True
        self._next_key = 0

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _open_checked(self, table: str, path: Path):
        pf = open_parquet(path)
        problems = schema_problems(pf.schema_arrow, SCHEMAS[table])
        for column, problem, expected, found in problems:
            self.schema_problems.append(SchemaProblem(table, self._rel(path), column, problem, expected, found,
                                                      pf.metadata.num_rows))
        return None if problems else pf

    def _keys(self, n: int, file: str, base: int) -> np.ndarray:
        start = self._next_key
        self._next_key += n
        self.provenance.add(start, start + n, file, "row", base)
        return np.arange(start, start + n, dtype=np.int64)

    def events(self, chunk_rows: int) -> Iterator[EventChunk]:
        schema = nullable(EVENTS)
        pending: list[pa.Table] = []
        pending_keys: list[np.ndarray] = []
        rows = 0
        for path in self._event_files():
            pf = self._open_checked("events", path)
            if pf is None:
                continue
            day = partition_date(path)
            position = 0
            try:
                for batch in pf.iter_batches(batch_size=max(1, chunk_rows), columns=EVENTS.names):
                    table = conform_table(pa.Table.from_batches([batch]), schema)
                    pending.append(table)
                    pending_keys.append(self._keys(table.num_rows, self._rel(path), position))
                    position += table.num_rows
                    rows += table.num_rows
                    if rows >= chunk_rows:
                        yield EventChunk(pa.concat_tables(pending), np.concatenate(pending_keys), day)
                        pending, pending_keys, rows = [], [], 0
            except (pa.ArrowException, OSError) as err:
                raise InputError(path, f"unreadable parquet data ({str(err).splitlines()[0]})",
                                 expected="a complete parquet file") from None
        if pending:
            yield EventChunk(pa.concat_tables(pending), np.concatenate(pending_keys), None)

    def _event_files(self) -> list[Path]:
        return table_files(self.root, "events")

    def _whole(self, table: str) -> TableRead:
        schema = nullable(SCHEMAS[table])
        parts, keys = [], []
        for path in table_files(self.root, table):
            pf = self._open_checked(table, path)
            if pf is None:
                continue
            try:
                part = conform_table(pf.read(columns=schema.names), schema)
            except (pa.ArrowException, OSError) as err:
                raise InputError(path, f"unreadable parquet data ({str(err).splitlines()[0]})",
                                 expected="a complete parquet file") from None
            parts.append(part)
            keys.append(self._keys(part.num_rows, self._rel(path), 0))
        if not parts:
            return TableRead(schema.empty_table(), np.empty(0, np.int64), table)
        return TableRead(pa.concat_tables(parts), np.concatenate(keys), table)

    def items(self) -> TableRead | None:
        return self._whole("items")

    def users(self) -> TableRead | None:
        return self._whole("users")


class EventsFileBatch(CanonicalBatch):
    """One canonical events parquet file on its own (no catalogue or users to check against)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such file", expected="a canonical events parquet file")
        super().__init__(path.parent)
        self.path = path
        self.label = str(path)
        self.has_catalogue = False

    def _event_files(self) -> list[Path]:
        return [self.path]

    def items(self) -> TableRead | None:
        return None

    def users(self) -> TableRead | None:
        return None


class SourceBatch:
    """A raw source file read through its adapter; keys are the CSV line numbers."""

    def __init__(self, source: str, path: str | Path) -> None:

        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such file", expected=f"a {source} file")
        self.adapter = open_source(source, self.path)
        self.label = str(self.path)
        self.provenance = Provenance()
        self.schema_problems: list[SchemaProblem] = []
        self.has_catalogue = True
        self._derived_keys = 1 << 40  # derived tables get keys far above any line number

    @property
    def issues(self) -> list[InputIssue]:
        return list(getattr(self.adapter, "issues", []))

    def events(self, chunk_rows: int) -> Iterator[EventChunk]:
        schema = nullable(EVENTS)
        file = getattr(self.adapter, "_label", None) or getattr(self.adapter, "_source_label", None) or self.label
        for frame in self.adapter.events(chunk_rows):
            keys = frame.index.to_numpy(dtype=np.int64)
            if len(keys):
                self.provenance.add(int(keys[0]), int(keys[-1]) + 1, file, "line", int(keys[0]))
            table = pa.Table.from_pandas(frame[EVENTS.names], schema=schema, preserve_index=False)
            yield EventChunk(table, keys, None)

    def _derived(self, frame: pd.DataFrame, table: str) -> TableRead:
        schema = nullable(SCHEMAS[table])
        start = self._derived_keys
        self._derived_keys += len(frame) + 1
        self.provenance.add(start, start + len(frame), f"{table} derived from {self.path.name},", "row", 0)
        return TableRead(pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False),
                         np.arange(start, start + len(frame), dtype=np.int64), table)

    def items(self) -> TableRead | None:
        return self._derived(self.adapter.items(), "items")

    def users(self) -> TableRead | None:
        return self._derived(self.adapter.users(), "users")
