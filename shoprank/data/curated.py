"""The curated event store in the private zone: validated canonical events, one object per day.

Publishing a batch replaces whole day partitions (one PUT each), so re-running a night is
idempotent and a reader sees either the old or the new day, never a mix. The hourly refresh
publishes with `merge=True`: its batch is one hour of a day, so the day's stored events are kept and
the hour's added (an hour published twice adds nothing: exact repeats are dropped).
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from shoprank.data.schema import EVENTS, ITEMS, USERS
from shoprank.layout import CURATED_EVENTS_PREFIX, CURATED_ITEMS_KEY, CURATED_USERS_KEY
from shoprank.storage import ObjectStore, read_parquet, write_parquet

EVENTS_PREFIX = CURATED_EVENTS_PREFIX
ITEMS_KEY = CURATED_ITEMS_KEY
USERS_KEY = CURATED_USERS_KEY


def publish_batch(store: ObjectStore, batch_dir: Path, merge: bool = False) -> list[str]:
    """Copy a validated staged batch into the curated store; return the days written."""
    events = ds.dataset(Path(batch_dir) / "events", format="parquet", schema=EVENTS, partitioning="hive",
                        exclude_invalid_files=True)
    table = events.to_table(columns=EVENTS.names)
    days: list[str] = []
    if table.num_rows:
        frame = table.to_pandas()
        for day, part in frame.groupby(frame["event_time"].dt.strftime("%Y-%m-%d"), sort=True):
            key = f"{EVENTS_PREFIX}/date={day}/part-0.parquet"
            if merge and store.exists(key):
                part = pd.concat([read_parquet(store, key).to_pandas(), part], ignore_index=True)
                part = part.drop_duplicates(ignore_index=True)
            part = part.sort_values(["event_time", "user_id"], kind="stable")
            write_parquet(store, key, pa.Table.from_pandas(part, schema=EVENTS, preserve_index=False))
            days.append(str(day))
    write_parquet(store, ITEMS_KEY, pq.read_table(Path(batch_dir) / "items", schema=ITEMS))
    write_parquet(store, USERS_KEY, pq.read_table(Path(batch_dir) / "users", schema=USERS))
    return days


def read_events(store: ObjectStore, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Curated events with start <= event_time < end, reading only the day partitions needed."""
    frames = []
    for key in store.list(EVENTS_PREFIX):
        day = pd.Timestamp(key.split("date=")[1].split("/")[0], tz="UTC")
        if (start is not None and day + pd.Timedelta(days=1) <= start) or (end is not None and day >= end):
            continue
        frames.append(pq.read_table(io.BytesIO(store.get_bytes(key)), columns=columns).to_pandas())
    if not frames:
        return EVENTS.empty_table().to_pandas()[columns or EVENTS.names]
    events = pd.concat(frames, ignore_index=True)
    mask = pd.Series(True, index=events.index)
    if start is not None:
        mask &= events["event_time"] >= start
    if end is not None:
        mask &= events["event_time"] < end
    return events[mask].reset_index(drop=True)


def read_items(store: ObjectStore) -> pd.DataFrame:
    return read_parquet(store, ITEMS_KEY).to_pandas()
