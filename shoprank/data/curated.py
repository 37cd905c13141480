"""The curated event store in the private zone: validated canonical events, one object per day.

Publishing a batch replaces whole day partitions (one PUT each), so re-running a night is
idempotent and a reader sees either the old or the new day, never a mix. The hourly refresh
publishes with `merge=True`: its batch is one hour of a day, so the day's stored events are kept and
the hour's added (an hour published twice adds nothing: exact repeats are dropped).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from shoprank.data.schema import EVENTS, ITEMS, USERS
from shoprank.layout import CURATED_EVENTS_PREFIX, CURATED_ITEMS_KEY, CURATED_USERS_KEY
from shoprank.storage import ObjectStore, read_parquet, write_parquet

EVENTS_PREFIX = CURATED_EVENTS_PREFIX
ITEMS_KEY = CURATED_ITEMS_KEY
USERS_KEY = CURATED_USERS_KEY


def publish_batch(store: ObjectStore, batch_dir: Path, merge: bool = False) -> list[str]:
    """Copy a validated staged batch into the curated store; return the days written. One day's
    folder (`events/date=<day>/`, where ingest puts each event by its time) is read and written at a
    time, so memory is one day's events, not the batch's."""
    days: list[str] = []
    for folder in sorted((Path(batch_dir) / "events").glob("date=*")):
        table = ds.dataset(folder, format="parquet", schema=EVENTS, exclude_invalid_files=True).to_table(
            columns=EVENTS.names)
        if not table.num_rows:
            continue
        day = folder.name.removeprefix("date=")
        part = table.to_pandas()
        key = f"{EVENTS_PREFIX}/date={day}/part-0.parquet"
        if merge and store.exists(key):
            part = pd.concat([read_parquet(store, key).to_pandas(), part], ignore_index=True)
            part = part.drop_duplicates(ignore_index=True)
        part = part.sort_values(["event_time", "user_id"], kind="stable")
        write_parquet(store, key, pa.Table.from_pandas(part, schema=EVENTS, preserve_index=False))
        days.append(day)
    write_parquet(store, ITEMS_KEY, pq.read_table(Path(batch_dir) / "items", schema=ITEMS))
    write_parquet(store, USERS_KEY, pq.read_table(Path(batch_dir) / "users", schema=USERS))
    return days


def _day_keys(store: ObjectStore, start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[str]:
    """The day partitions that may hold events with start <= event_time < end, in day order."""
    keys = []
    for key in store.list(EVENTS_PREFIX):
        day = pd.Timestamp(key.split("date=")[1].split("/")[0], tz="UTC")
        if (start is not None and day + pd.Timedelta(days=1) <= start) or (end is not None and day >= end):
            continue
        keys.append(key)
    return sorted(keys)


def _inside(table: pa.Table, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    events = table.to_pandas()
    mask = pd.Series(True, index=events.index)
    if start is not None:
        mask &= events["event_time"] >= start
    if end is not None:
        mask &= events["event_time"] < end
    return events[mask].reset_index(drop=True)


def iter_event_days(store: ObjectStore, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                    columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """`read_events`, one day at a time (a step that works day by day holds one day, not the window).
    Yields at least one frame, empty and typed where no day is inside."""
    keys = _day_keys(store, start, end)
    if not keys:
        yield EVENTS.empty_table().to_pandas()[columns or EVENTS.names]
    for key in keys:
        yield _inside(pq.read_table(io.BytesIO(store.get_bytes(key)), columns=columns), start, end)


def iter_session_chunks(store: ObjectStore, start: pd.Timestamp | None, end: pd.Timestamp | None,
                        columns: list[str], max_rows: int = 4_000_000) -> Iterator[pd.DataFrame]:
    """The window's events that have a session, in chunks that each hold whole sessions (a session's
    later events decide what its searches found, and a session may cross midnight). Sessions go to
    chunks by the last character of their id, so a chunk is about `max_rows` rows whatever the
    window's size; each chunk reads the window's days again, keeping only its sessions."""
    columns = list(dict.fromkeys(["session_id", *columns]))
    keys = _day_keys(store, start, end)
    if not keys:
        yield EVENTS.empty_table().to_pandas()[columns]
        return
    endings: dict[str, int] = {}
    for key in keys:
        ids = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["session_id"]).column("session_id")
        last = pc.utf8_slice_codeunits(pc.drop_null(ids), -1).value_counts()
        for entry in last.to_pylist():
            endings[entry["values"]] = endings.get(entry["values"], 0) + entry["counts"]
    chunks: list[list[str]] = [[]]
    rows = 0
    for ending, n in sorted(endings.items()):
        if chunks[-1] and rows + n > max_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(ending)
        rows += n
    for chunk in chunks:
        wanted = pa.array(chunk, pa.string())
        parts = []
        for key in keys:
            table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=columns)
            ids = table.column("session_id")
            keep = pc.fill_null(pc.is_in(pc.utf8_slice_codeunits(ids, -1), value_set=wanted), False)
            parts.append(_inside(table.filter(keep), start, end))
        yield pd.concat(parts, ignore_index=True)


def read_events(store: ObjectStore, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
    """Curated events with start <= event_time < end, reading only the day partitions needed."""
    return pd.concat(list(iter_event_days(store, start, end, columns)), ignore_index=True)


def read_items(store: ObjectStore) -> pd.DataFrame:
    return read_parquet(store, ITEMS_KEY).to_pandas()
