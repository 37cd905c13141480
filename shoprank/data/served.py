"""What the online API served and what users did with it, as hourly parquet in the private zone.

`roll` turns the event log's closed segments (`shoprank.data.event_log`) into hourly parquet, in the
curated layout of the object store (local folder, or S3 with the same keys):

    served/events/date=YYYY-MM-DD/hour=HH/events.parquet      events by event time (FEEDBACK schema)
    served/requests/date=YYYY-MM-DD/hour=HH/requests.parquet  served lists by time served (REQUESTS)

A segment first becomes one part per hour it touches (`part-<segment>.parquet`, named after the
segment, so rolling it again rewrites the same objects), and is deleted only after every part is
written: a roll that dies halfway is simply run again, nothing is lost. Once an hour is over (plus
`SETTLE` for late events), its parts are compacted into the hour's one object, one row per
event_id / request_id (a resend that reached two API processes is stored once), written before the
parts are deleted. A roll costs what its segments hold, never the size of the hour. Readers drop
repeated ids too, so a read between the two steps of a compaction sees each event once. Rolls take a
store lock, so two rollers (two API pods, the hourly DAG) never work on the same hour at once.

The nightly pipeline reads this as the source `served` (`shoprank.data.sources.served`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.data.event_log import closed_segments, read_segment
from shoprank.data.feedback import FEEDBACK
from shoprank.locks import StoreLock
from shoprank.storage import ObjectStore, write_parquet

EVENTS_PREFIX = "served/events"
REQUESTS_PREFIX = "served/requests"

REQUESTS = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("route", pa.string(), nullable=False),  # recommend | search
    pa.field("user_id", pa.string()),
    pa.field("query", pa.string()),
    pa.field("model_version", pa.int64()),
    pa.field("index_version", pa.int64()),
    pa.field("reason", pa.string()),  # why the list is not personalised (cold start, no_match, ...)
    pa.field("items", pa.list_(pa.string())),  # served, in order: position p is items[p - 1]
    pa.field("scores", pa.list_(pa.float64())),
    pa.field("sources", pa.list_(pa.string())),  # where each served item came from / what placed it
    pa.field("candidates", pa.list_(pa.string())),  # everything the ranker scored (recommend)
    pa.field("candidate_scores", pa.list_(pa.float64())),
    pa.field("candidate_sources", pa.list_(pa.string())),
])


@dataclass
class RollResult:
    segments: int = 0
    events: int = 0
    requests: int = 0
    duplicates: int = 0
    hours: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)


def _frame(items: list[dict], schema: pa.Schema, time_column: str) -> pd.DataFrame:
    frame = pd.DataFrame(items, columns=schema.names)
    for column in (time_column, "received_at"):
        if column in frame:
            micros = (frame[column].astype("float64") * 1e6).round().astype("int64")  # the schema's unit
            frame[column] = pd.to_datetime(micros, unit="us", utc=True)
    return frame


def _part_key(prefix: str, hour: pd.Timestamp, segment: Path) -> str:
    return f"{prefix}/date={hour:%Y-%m-%d}/hour={hour:%H}/part-{segment.stem}.parquet"


def _roll_segment(path: Path, store: ObjectStore, result: RollResult, log: Callable[[str], None]) -> None:
    read = read_segment(path)
    if read.torn:
        message = f"event log: {path.name}: dropped a torn last record: {read.torn}"
        log(message)
        result.torn.append(message)
    events = [e for r in read.records if r.kind == "events" for e in r.items]
    requests = [q for r in read.records if r.kind == "served" for q in r.items]
    for items, schema, prefix, name, id_column, time_column in _tables(events, requests):
        if not items:
            continue
        frame = _frame(items, schema, time_column)
        before = len(frame)
        frame = frame.drop_duplicates(id_column, keep="first")
        result.duplicates += before - len(frame)
        for hour, part in frame.groupby(frame[time_column].dt.floor("h"), sort=True):
            write_parquet(store, _part_key(prefix, hour, path),
                          pa.Table.from_pandas(part, schema=schema, preserve_index=False))
            result.hours.append(f"{name} {hour:%Y-%m-%d %H}:00")
    result.events += len(events)
    result.requests += len(requests)
    result.segments += 1


def _tables(events: list, requests: list) -> tuple:
    """(rows, schema, prefix, object name, id column, time column) of the two tables."""
    return ((events, FEEDBACK, EVENTS_PREFIX, "events", "event_id", "event_time"),
            (requests, REQUESTS, REQUESTS_PREFIX, "requests", "request_id", "served_at"))


SETTLE = pd.Timedelta(hours=1)  # how long after an hour ends its parts wait for late events


def compact(store: ObjectStore, now: pd.Timestamp | None = None) -> int:
    """Merge the parts of every hour that ended `SETTLE` ago into its one object; the repeats dropped."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    dropped = 0
    for _, schema, prefix, name, id_column, time_column in _tables([], []):
        parts: dict[str, list[str]] = {}
        for key in store.list(prefix):
            folder, _, file = key.rpartition("/")
            if file.startswith("part-") and file.endswith(".parquet"):
                parts.setdefault(folder, []).append(key)
        for folder, keys in sorted(parts.items()):
            if _hour_of(folder) + pd.Timedelta(hours=1) + SETTLE > now:
                continue
            whole = f"{folder}/{name}.parquet"
            tables = [pq.read_table(io.BytesIO(store.get_bytes(k)), schema=schema)
                      for k in ([whole] if store.exists(whole) else []) + sorted(keys)]
            merged = pa.concat_tables(tables).to_pandas()
            before = len(merged)
            merged = merged.drop_duplicates(id_column, keep="first").sort_values([time_column, id_column],
                                                                                 kind="stable")
            dropped += before - len(merged)
            write_parquet(store, whole, pa.Table.from_pandas(merged, schema=schema, preserve_index=False))
            for key in keys:  # only after the hour's object holds them
                store.delete_prefix(key)
    return dropped


def _hour_of(folder: str) -> pd.Timestamp:
    parts = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    return pd.Timestamp(f"{parts['date']} {parts['hour']}:00", tz="UTC")


def roll(log_dir: str | Path, store: ObjectStore, log: Callable[[str], None] = print,
         lock_wait_s: float = 60.0) -> RollResult:
    """Roll every closed segment into hourly parts, delete it, then compact the hours that are over."""
    result = RollResult()
    with StoreLock(store, "served-roll", "roll the event log into hourly parquet", wait_s=lock_wait_s):
        for claim in closed_segments(log_dir):
            try:
                _roll_segment(claim.path, store, result, log)
            except BaseException:
                claim.release(delete=False)  # kept whole for the next roll: parts of it may be stored
                raise
            claim.release(delete=True)
        result.duplicates += compact(store)
    return result


def _hour_objects(store: ObjectStore, prefix: str, start: pd.Timestamp | None,
                  end: pd.Timestamp | None) -> Iterator[str]:
    for key in store.list(prefix):
        if not key.endswith(".parquet"):
            continue
        hour = _hour_of(key.rpartition("/")[0])
        if (start is not None and hour + pd.Timedelta(hours=1) <= start) or (end is not None and hour >= end):
            continue
        yield key


def read_served(store: ObjectStore, table: str = "events", start: pd.Timestamp | None = None,
                end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Stored feedback events (or served requests) with start <= time < end."""
    prefix, schema, time_column, id_column = ((EVENTS_PREFIX, FEEDBACK, "event_time", "event_id")
                                              if table == "events"
                                              else (REQUESTS_PREFIX, REQUESTS, "served_at", "request_id"))
    tables = []
    for key in _hour_objects(store, prefix, start, end):
        try:
            tables.append(pq.read_table(io.BytesIO(store.get_bytes(key)), schema=schema))
        except (FileNotFoundError, KeyError):
            continue  # a part compacted away between the listing and the read: its rows are in the hour's object
    frame = pa.concat_tables(tables).to_pandas() if tables else schema.empty_table().to_pandas()
    frame = frame.drop_duplicates(id_column, keep="first")
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame[time_column] >= start
    if end is not None:
        mask &= frame[time_column] < end
    return frame[mask].reset_index(drop=True)


def export(store: ObjectStore, out_dir: str | Path, start: pd.Timestamp | None = None,
           end: pd.Timestamp | None = None) -> dict[str, int]:
    """What is stored, as parquet a person or a test can open: `events/` canonical behaviour events
    (a canonical folder with the curated catalogue, readable by the `canonical` source), `feedback/`
    every stored event with its id, request id and position, `requests/` the served lists.
    Written beside `out_dir` and renamed into place."""
    import shutil

    from shoprank.data.curated import ITEMS_KEY, USERS_KEY
    from shoprank.data.schema import EVENT_TYPES, EVENTS

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {}
    try:
        feedback = read_served(store, "events", start, end)
        requests = read_served(store, "requests", start, end)
        canonical = feedback[feedback["event_type"].isin(EVENT_TYPES)][EVENTS.names]
        for name, frame, schema, column in (("feedback", feedback, FEEDBACK, "event_time"),
                                            ("events", canonical, EVENTS, "event_time"),
                                            ("requests", requests, REQUESTS, "served_at")):
            (tmp / name).mkdir(parents=True)
            for day, part in frame.groupby(frame[column].dt.strftime("%Y-%m-%d"), sort=True):
                (tmp / name / f"date={day}").mkdir()
                pq.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False),
                               tmp / name / f"date={day}" / "part-0.parquet")
            counts[name] = len(frame)
        for table, key in (("items", ITEMS_KEY), ("users", USERS_KEY)):
            if store.exists(key):
                (tmp / table).mkdir()
                (tmp / table / "part-0.parquet").write_bytes(store.get_bytes(key))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
