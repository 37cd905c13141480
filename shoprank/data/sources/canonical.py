"""Canonical parquet written by this project (or a shop that already speaks the contract)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from shoprank.data.schema import EVENTS, ITEMS, USERS


class CanonicalSource:
    """A folder with `events/`, `items/`, `users/` parquet (events may be hive-partitioned)."""

    name = "canonical"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _dataset(self, table: str, schema) -> ds.Dataset:
        folder = self.path / table
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: canonical source has no {table}/ folder")
        return ds.dataset(folder, format="parquet", schema=schema, partitioning="hive",
                          exclude_invalid_files=True)

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        for batch in self._dataset("events", EVENTS).to_batches(batch_size=chunk_rows, columns=EVENTS.names):
            yield batch.to_pandas()

    def items(self) -> pd.DataFrame:
        return self._dataset("items", ITEMS).to_table(columns=ITEMS.names).to_pandas()

    def users(self) -> pd.DataFrame:
        return self._dataset("users", USERS).to_table(columns=USERS.names).to_pandas()
