"""The training set as one Parquet file written part by part: each row group holds whole candidate lists.

Why parts: the training set grows with the users sampled (about 240 candidate rows per user and
cut-off), and at a large shop the whole population is ~10^8 rows, more than memory holds. The
training-set step builds and writes one part of the users at a time, and the trainer streams the
parts back one row group at a time (`models.train`), so neither holds more than a part. Every
reader that wants the whole file (`pd.read_parquet`) still sees one table, and a row group never
splits a list, because a part holds all rows of its users at every cut-off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

LISTS_PER_PART = 8_000  # ~2M rows at ~240 candidates a list: about 1 GB in memory with the features


def user_parts(sampled: dict[pd.Timestamp, list[str]], lists_per_part: int = LISTS_PER_PART) -> list[dict]:
    """The sampled users of each cut-off cut into parts of at most ~`lists_per_part` lists; a user
    lands in the same part at every cut-off (by position in the sorted union), so one part's user
    rows are read once."""
    users = sorted(set().union(*map(set, sampled.values()))) if sampled else []
    total = sum(len(v) for v in sampled.values())
    n_parts = max(1, -(-total // max(lists_per_part, 1)))
    part_of = {u: j * n_parts // max(len(users), 1) for j, u in enumerate(users)}
    parts: list[dict] = [{at: [] for at in sampled} for _ in range(n_parts)]
    for at, chosen in sampled.items():
        for user in chosen:
            parts[part_of[user]][at].append(user)
    return [part for part in parts if any(part.values())]


class PartWriter:
    """Appends parts to one Parquet file, each part as one row group, under the first part's schema
    (a later part's column of another width is cast to it; a column the first part had all-null
    is taken as strings, the only all-null columns the training set has)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.parts = 0

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                                for f in table.schema]).remove_metadata()
            self._writer = pq.ParquetWriter(self.path, schema)
        missing = set(self._writer.schema.names) - set(table.column_names)
        if missing:
            raise ValueError(f"{self.path}: part {self.parts + 1} lacks the first part's columns {sorted(missing)}")
        table = table.select(self._writer.schema.names)
        for field in self._writer.schema:
            try:
                table = table.set_column(table.schema.get_field_index(field.name), field,
                                         table.column(field.name).cast(field.type))
            except pa.ArrowException as err:  # a value or a type the cast cannot convert
                got = table.schema.field(field.name).type
                raise ValueError(f"{self.path}: part {self.parts + 1}, column {field.name!r} is {got}, "
                                 f"the first part's is {field.type}: {err}") from err
        self._writer.write_table(table, row_group_size=max(len(frame), 1))
        self.rows += len(frame)
        self.parts += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ExampleParts:
    """The rows of one split of a parts file, read a row group at a time."""

    def __init__(self, path: Path, split: str = "train") -> None:
        self.path, self.split = Path(path), split
        self.file = pq.ParquetFile(self.path)
        self.n_parts = self.file.num_row_groups
        splits = [self._split_column(j) for j in range(self.n_parts)]
        self.rows_per_part = [int(pc.sum(pc.equal(s, split)).as_py() or 0) for s in splits]

    def _split_column(self, j: int) -> pa.ChunkedArray:
        return self.file.read_row_group(j, columns=["split"]).column("split")

    @property
    def rows(self) -> int:
        return sum(self.rows_per_part)

    def part(self, j: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        table = self.file.read_row_group(j, columns=list(columns) if columns is not None else None)
        split = table.column("split") if "split" in table.column_names else self._split_column(j)
        return table.filter(pc.equal(split, self.split)).to_pandas()

    def frames(self, rng: np.random.Generator | None = None, columns: Sequence[str] | None = None
               ) -> Iterator[pd.DataFrame]:
        """The split's rows part by part, the parts in a random order when `rng` is given."""
        order = rng.permutation(self.n_parts) if rng is not None else np.arange(self.n_parts)
        for j in order:
            if self.rows_per_part[j]:
                yield self.part(int(j), columns)

    def count_positive(self, column: str) -> int:
        """Rows of the split whose `column` is > 0 (0 when the file has no such column)."""
        if column not in self.file.schema_arrow.names:
            return 0
        return sum(int((frame[column] > 0).sum()) for frame in self.frames(columns=[column, "split"]))

    def first(self) -> pd.DataFrame:
        """The first non-empty part: the sample a model's normalisation adapts to."""
        return next(self.frames())
