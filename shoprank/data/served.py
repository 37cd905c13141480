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

Records become Arrow through the declared schemas (`shoprank.data.records`), never through pandas'
type inference: a search list has no `candidates`, and that column is null in its declared type.
A segment whose records still do not convert (a data error, the same on every try) never holds the
others back: it is kept and retried, and after `QUARANTINE_AFTER` tries in a row with the same error
it is moved whole, with the error beside it, to `served/quarantine/segments/` in the store (a stored
part that cannot be read goes to `served/quarantine/parts/`). `retry_quarantined` (`shoprank events
roll --retry-quarantined`) brings them back once the code is fixed. Transient errors (the store
unreachable, AccessDenied, a held lock) are never quarantined: they stop the roll and it is retried.
`roll_health` is what the alerts watch (the API's `/metrics`, the hourly DAG).

The nightly pipeline reads this as the source `served` (`shoprank.data.sources.served`).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoprank.data.curated import ITEMS_KEY, USERS_KEY
from shoprank.data.event_log import closed_segments, read_segment, segment_created_s, segments
from shoprank.data.feedback import FEEDBACK
from shoprank.data.records import concat, first_of_each, table_from_records
from shoprank.data.schema import EVENT_TYPES, EVENTS
from shoprank.data.search_log import scrub
from shoprank.layout import SERVED_EVENTS_PREFIX, SERVED_QUARANTINE_PREFIX, SERVED_REQUESTS_PREFIX
from shoprank.locks import StoreLock
from shoprank.storage import ObjectStore, replacing, replacing_dir, write_parquet

EVENTS_PREFIX = SERVED_EVENTS_PREFIX
REQUESTS_PREFIX = SERVED_REQUESTS_PREFIX

REQUESTS = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("route", pa.string(), nullable=False),  # recommend | search | similar | bought_together
    pa.field("user_id", pa.string()),  # the shopper's pseudonym (None: an anonymous list)
    # the id of the pseudonymisation key `user_id` was made with; None with a user_id only in rows
    # logged before the API took pseudonyms (those hold raw ids, and only in the private store)
    pa.field("user_key_id", pa.string()),
    pa.field("query", pa.string()),  # scrubbed (`data.search_log.scrub`)
    pa.field("model_version", pa.int64()),
    pa.field("index_version", pa.int64()),
    pa.field("reason", pa.string()),  # why the list is not personalised (cold start, no_match, ...)
    pa.field("items", pa.list_(pa.string())),  # served, in order: position p is items[p - 1]
    pa.field("scores", pa.list_(pa.float64())),
    pa.field("sources", pa.list_(pa.string())),  # where each served item came from / what placed it
    pa.field("candidates", pa.list_(pa.string())),  # everything the ranker scored (recommend)
    pa.field("candidate_scores", pa.list_(pa.float64())),
    pa.field("candidate_sources", pa.list_(pa.string())),
    # per served item: where the ranker had put it (null: a rule brought it in) and the rule that placed
    # it (null: the ranker's order). Training reads positions as displayed and leaves rule-placed
    # items out of what the ranker learns relevance from.
    pa.field("ranker_positions", pa.list_(pa.int64())),
    pa.field("rules", pa.list_(pa.string())),
    # the online experiment the list was served in (null: none), the shopper's arm, and per served item
    # the interleaving team that placed it ("a", "b"; null: a rule did, or no interleaving)
    pa.field("experiment", pa.string()),
    pa.field("arm", pa.string()),
    pa.field("teams", pa.list_(pa.string())),
    pa.field("latency_ms", pa.float64()),  # the answer's time in the API, for the arms' guardrails
    pa.field("fallback", pa.string()),  # the arm's model failed: why, and the control's model answered
])

ROUTES = ("recommend", "search", "similar", "bought_together")


def served_list(request_id: str, route: str, served_at: float, user_id: str | None, items: list[str],
                scores: list[float | None], sources: list[str], *, user_key_id: str | None = None,
                query: str | None = None,
                model_version: int | None = None, index_version: int | None = None, reason: str | None = None,
                candidates: list[str] | None = None, candidate_scores: list[float] | None = None,
                candidate_sources: list[str] | None = None, ranker_positions: list[int | None] | None = None,
                rules: list[str | None] | None = None, experiment: str | None = None, arm: str | None = None,
                teams: list[str | None] | None = None, latency_ms: float | None = None,
                fallback: str | None = None) -> dict:
    """One served list as the log stores it (a `REQUESTS` row): the one constructor every route uses,
    so the record and its schema cannot drift apart. `served_at`: Unix seconds."""
    if route not in ROUTES:
        raise ValueError(f"served list {request_id}: route must be one of {ROUTES}, got {route!r}")
    if not len(items) == len(scores) == len(sources):
        raise ValueError(f"served list {request_id}: {len(items)} items, {len(scores)} scores and "
                         f"{len(sources)} sources must be as many")
    for name, per_item in (("ranker_positions", ranker_positions), ("rules", rules), ("teams", teams)):
        if per_item is not None and len(per_item) != len(items):
            raise ValueError(f"served list {request_id}: {len(per_item)} {name} for {len(items)} items")
    if user_id is not None and user_key_id is None:
        raise ValueError(f"served list {request_id}: a pseudonym needs the id of the key it was made with")
    record = {"request_id": request_id, "served_at": served_at, "route": route, "user_id": user_id,
              "user_key_id": user_key_id, "query": scrub(query) if query is not None else None,
              "model_version": model_version, "index_version": index_version, "reason": reason, "items": items,
              "scores": scores, "sources": sources, "candidates": candidates, "candidate_scores": candidate_scores,
              "candidate_sources": candidate_sources, "ranker_positions": ranker_positions, "rules": rules,
              "experiment": experiment, "arm": arm, "teams": teams, "latency_ms": latency_ms, "fallback": fallback}
    return record


#: Rules whose items the ranker did not choose: a pinned or boosted campaign item, a substitute, a new
#: item's slot. Their clicks say the rule worked, not that the ranker should rank them (diversity and
#: suppression only move the ranker's own items, which stay its examples).
RULE_PLACED = ("pin:", "boost:", "substitute:", "new_item")


def rule_placed_items(requests: pd.DataFrame) -> set[tuple[str, str]]:
    """(request id, item) of every served item a merchandising rule placed (lists logged before rules
    were logged have none)."""
    if requests.empty or "rules" not in requests:
        return set()
    out: set[tuple[str, str]] = set()
    for request_id, items, rules in zip(requests["request_id"], requests["items"], requests["rules"], strict=True):
        if rules is None or items is None:
            continue
        out.update((request_id, item) for item, rule in zip(items, rules, strict=False)
                   if isinstance(rule, str) and rule.startswith(RULE_PLACED))
    return out


@dataclass
class RollResult:
    segments: int = 0
    events: int = 0
    requests: int = 0
    duplicates: int = 0
    hours: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # segments kept after a data error (retried next roll)
    quarantined: list[str] = field(default_factory=list)  # moved aside this roll (segments and parts)
    erased: int = 0  # records of forgotten shoppers dropped


QUARANTINE_PREFIX = SERVED_QUARANTINE_PREFIX
QUARANTINE_AFTER = 3  # tries in a row that fail with the same data error before a segment is moved aside
# RecordError and JSON errors are ValueErrors; every Arrow conversion error is an ArrowException
DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError, pa.ArrowException)


def is_data_error(err: BaseException) -> bool:
    """True for an error that comes from what a segment holds and so repeats on every try. An I/O
    error (the store unreachable, AccessDenied, a full disk; Arrow's included), running out of memory
    or a held lock is transient: never that."""
    return isinstance(err, DATA_ERRORS) and not isinstance(err, OSError | MemoryError)


def _part_key(prefix: str, hour: datetime, segment: str) -> str:
    return f"{prefix}/date={hour:%Y-%m-%d}/hour={hour:%H}/part-{Path(segment).stem}.parquet"


def _roll_segment(path: Path, store: ObjectStore, result: RollResult, log: Callable[[str], None],
                  erased: frozenset[str] = frozenset()) -> None:
    read = read_segment(path)
    if read.torn:
        message = f"event log: {path.name}: dropped a torn last record: {read.torn}"
        log(message)
        result.torn.append(message)
    events = [e for r in read.records if r.kind == "events" for e in r.items]
    requests = [q for r in read.records if r.kind == "served" for q in r.items]
    if erased:  # a forgotten shopper's records still in the log are never stored
        kept_events = [e for e in events if e.get("user_id") not in erased]
        kept_requests = [q for q in requests if q.get("user_id") not in erased]
        result.erased += len(events) - len(kept_events) + len(requests) - len(kept_requests)
        events, requests = kept_events, kept_requests
    writes = []  # every table is converted before anything is written: a bad record writes nothing
    for items, schema, prefix, name, id_column, time_column in _tables(events, requests):
        if not items:
            continue
        table, repeats = first_of_each(table_from_records(items, schema, source=f"{path.name} {name}"), id_column)
        result.duplicates += repeats
        hours = pc.floor_temporal(table.column(time_column), unit="hour")
        for hour in sorted(set(hours.to_pylist())):
            part = table.filter(pc.equal(hours, pa.scalar(hour, hours.type)))
            writes.append((_part_key(prefix, hour, path.name), part, f"{name} {hour:%Y-%m-%d %H}:00"))
    for key, part, hour in writes:
        write_parquet(store, key, part)
        result.hours.append(hour)
    result.events += len(events)
    result.requests += len(requests)
    result.segments += 1


def _tables(events: list, requests: list) -> tuple:
    """(rows, schema, prefix, object name, id column, time column) of the two tables."""
    return ((events, FEEDBACK, EVENTS_PREFIX, "events", "event_id", "event_time"),
            (requests, REQUESTS, REQUESTS_PREFIX, "requests", "request_id", "served_at"))


SETTLE = pd.Timedelta(hours=1)  # how long after an hour ends its parts wait for late events


def _quarantine_part(store: ObjectStore, key: str, err: BaseException) -> str:
    """Move a stored part that cannot be read aside (whole, with its error): it would fail every reader."""
    target = f"{QUARANTINE_PREFIX}/parts/{key}"
    store.put_bytes(target, store.get_bytes(key))
    store.put_bytes(f"{target}.error.json", _error_json(err, tries=1))
    store.delete_prefix(key)
    return target


def compact(store: ObjectStore, now: pd.Timestamp | None = None, log: Callable[[str], None] = print,
            result: RollResult | None = None) -> int:
    """Merge the parts of every hour that ended `SETTLE` ago into its one object; the repeats dropped.
    A part that cannot be read is quarantined and its hour merged without it: one bad file never
    holds the other hours (or the readers) back."""
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
            tables, merged_keys = [], []
            for key in ([whole] if store.exists(whole) else []) + sorted(keys):
                try:
                    tables.append(pq.read_table(io.BytesIO(store.get_bytes(key)), schema=schema))
                    merged_keys.append(key)
                except DATA_ERRORS as err:
                    if not is_data_error(err):
                        raise
                    moved = _quarantine_part(store, key, err)
                    log(f"event roll: {key} cannot be read ({type(err).__name__}: {err}); moved to {moved}")
                    if result is not None:
                        result.quarantined.append(moved)
            if not tables:
                continue
            merged, repeats = first_of_each(pa.concat_tables(tables), id_column)
            dropped += repeats
            write_parquet(store, whole, merged.sort_by([(time_column, "ascending"), (id_column, "ascending")]))
            for key in merged_keys:  # only after the hour's object holds them
                if key != whole:
                    store.delete_prefix(key)
    return dropped


def _hour_of(folder: str) -> pd.Timestamp:
    parts = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    return pd.Timestamp(f"{parts['date']} {parts['hour']}:00", tz="UTC")


def _error_json(err: BaseException, tries: int) -> bytes:
    return json.dumps({"error": f"{type(err).__name__}: {err}", "tries": tries,
                       "at": datetime.now(UTC).isoformat(timespec="seconds")}).encode()


def _failures_path(segment: Path) -> Path:
    """Beside the segment (not matched by the segment glob): the data error of its last tries."""
    return segment.with_name(f".{segment.name}.failures.json")


def _record_failure(segment: Path, err: BaseException) -> int:
    """Count this try: the tries in a row that failed with this same error (a different error starts over)."""
    signature = f"{type(err).__name__}: {err}"
    path = _failures_path(segment)
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        before = {}
    tries = before.get("tries", 0) + 1 if before.get("error") == signature else 1
    with replacing(path) as tmp:
        tmp.write_text(json.dumps({"error": signature, "tries": tries}))
    return tries


def _quarantine_segment(store: ObjectStore, segment: Path, err: BaseException, tries: int) -> str:
    """Copy the segment whole into the store's quarantine with its error, then remove it here."""
    target = f"{QUARANTINE_PREFIX}/segments/{segment.name}"
    store.put_file(target, segment)
    store.put_bytes(f"{target}.error.json", _error_json(err, tries))
    _failures_path(segment).unlink(missing_ok=True)
    return target


def roll(log_dir: str | Path, store: ObjectStore, log: Callable[[str], None] = print,
         lock_wait_s: float = 60.0, erased: frozenset[str] = frozenset()) -> RollResult:
    """Roll every closed segment into hourly parts, delete it, then compact the hours that are over.

    A segment whose records do not convert (a data error) is kept and the roll goes on with the next
    one; after `QUARANTINE_AFTER` tries in a row with the same error it is moved to the store's
    quarantine. A transient error (I/O, the store) stops the roll and is raised: the next roll retries.
    Records of the `erased` pseudonyms (forgotten shoppers) are dropped, not stored."""
    result = RollResult()
    with StoreLock(store, "served-roll", "roll the event log into hourly parquet", wait_s=lock_wait_s):
        for claim in closed_segments(log_dir):
            try:
                _roll_segment(claim.path, store, result, log, erased)
            except BaseException as err:
                if not (isinstance(err, Exception) and is_data_error(err)):
                    claim.release(delete=False)  # kept whole for the next roll: parts of it may be stored
                    raise
                tries = _record_failure(claim.path, err)
                if tries >= QUARANTINE_AFTER:
                    moved = _quarantine_segment(store, claim.path, err, tries)
                    result.quarantined.append(moved)
                    log(f"event roll: {claim.path.name} failed {tries} times with {type(err).__name__}: {err}; "
                        f"moved to {moved} (`shoprank events roll --retry-quarantined` brings it back)")
                    claim.release(delete=True)
                else:
                    result.failed.append(f"{claim.path.name}: {type(err).__name__}: {err}")
                    log(f"event roll: {claim.path.name} kept after try {tries} of {QUARANTINE_AFTER}: "
                        f"{type(err).__name__}: {err}")
                    claim.release(delete=False)
                continue
            _failures_path(claim.path).unlink(missing_ok=True)
            claim.release(delete=True)
        result.duplicates += compact(store, log=log, result=result)
    return result


def quarantined(store: ObjectStore) -> list[str]:
    """The keys of what the roll moved aside (segments and parts), without their error files."""
    return [k for k in store.list(QUARANTINE_PREFIX) if not k.endswith(".error.json")]


def retry_quarantined(log_dir: str | Path, store: ObjectStore) -> list[str]:
    """Put every quarantined segment back into the log folder and every part back into its hour, so
    the next roll takes them again (after the code that refused them is fixed). Returns what moved."""
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    back = []
    for key in quarantined(store):
        relative = key.removeprefix(f"{QUARANTINE_PREFIX}/")
        kind, _, rest = relative.partition("/")
        if kind == "segments":
            with replacing(folder / Path(rest).name) as tmp:
                tmp.write_bytes(store.get_bytes(key))
        elif kind == "parts":
            store.put_bytes(rest, store.get_bytes(key))
        else:
            continue
        store.delete_prefix(f"{key}.error.json")
        store.delete_prefix(key)
        back.append(key)
    return back


@dataclass(frozen=True)
class RollHealth:
    """What the roll's alerts watch: how long the oldest closed-or-open segment has waited, what is
    quarantined, and the segments failing right now."""

    oldest_unrolled_age_s: float
    unrolled_segments: int
    quarantined: int
    failing: dict[str, str]

    def as_dict(self) -> dict:
        return {"oldest_unrolled_age_s": self.oldest_unrolled_age_s, "unrolled_segments": self.unrolled_segments,
                "quarantined": self.quarantined, "failing": self.failing}


def roll_health(log_dir: str | Path, store: ObjectStore, now_s: float | None = None) -> RollHealth:
    now_s = time.time() if now_s is None else now_s
    paths = segments(log_dir)
    ages = [now_s - created for p in paths if (created := segment_created_s(p)) is not None]
    failing = {}
    for path in paths:
        try:
            failing[path.name] = json.loads(_failures_path(path).read_text())["error"]
        except (OSError, ValueError, KeyError):
            continue
    return RollHealth(max(ages, default=0.0), len(paths), len(quarantined(store)), failing)


def _hour_objects(store: ObjectStore, prefix: str, start: pd.Timestamp | None,
                  end: pd.Timestamp | None) -> Iterator[str]:
    for key in store.list(prefix):
        if not key.endswith(".parquet"):
            continue
        hour = _hour_of(key.rpartition("/")[0])
        if (start is not None and hour + pd.Timedelta(hours=1) <= start) or (end is not None and hour >= end):
            continue
        yield key


def read_served_table(store: ObjectStore, table: str = "events", start: pd.Timestamp | None = None,
                      end: pd.Timestamp | None = None) -> pa.Table:
    """Stored feedback events (or served requests) with start <= time < end, each id once."""
    prefix, schema, time_column, id_column = ((EVENTS_PREFIX, FEEDBACK, "event_time", "event_id")
                                              if table == "events"
                                              else (REQUESTS_PREFIX, REQUESTS, "served_at", "request_id"))
    tables = []
    for key in _hour_objects(store, prefix, start, end):
        try:
            tables.append(pq.read_table(io.BytesIO(store.get_bytes(key)), schema=schema))
        except (FileNotFoundError, KeyError):
            continue  # a part compacted away between the listing and the read: its rows are in the hour's object
    stored, _ = first_of_each(concat(tables, schema), id_column)
    times = stored.column(time_column)
    if start is not None:
        stored = stored.filter(pc.greater_equal(times, pa.scalar(start.to_pydatetime(), times.type)))
        times = stored.column(time_column)
    if end is not None:
        stored = stored.filter(pc.less(times, pa.scalar(end.to_pydatetime(), times.type)))
    return stored


def read_served(store: ObjectStore, table: str = "events", start: pd.Timestamp | None = None,
                end: pd.Timestamp | None = None) -> pd.DataFrame:
    """`read_served_table` as a DataFrame."""
    return read_served_table(store, table, start, end).to_pandas()


def export(store: ObjectStore, out_dir: str | Path, start: pd.Timestamp | None = None,
           end: pd.Timestamp | None = None) -> dict[str, int]:
    """What is stored, as parquet a person or a test can open: `events/` canonical behaviour events
    (a canonical folder with the curated catalogue, readable by the `canonical` source), `feedback/`
    every stored event with its id, request id and position, `requests/` the served lists.
    Written beside `out_dir` and swapped into place whole."""

    counts = {}
    with replacing_dir(Path(out_dir)) as tmp:
        feedback = read_served_table(store, "events", start, end)
        requests = read_served_table(store, "requests", start, end)
        canonical = feedback.filter(pc.is_in(feedback.column("event_type"), pa.array(EVENT_TYPES)))
        canonical = canonical.select(EVENTS.names).cast(EVENTS)
        for name, table, column in (("feedback", feedback, "event_time"), ("events", canonical, "event_time"),
                                    ("requests", requests, "served_at")):
            (tmp / name).mkdir(parents=True)
            days = pc.strftime(table.column(column), format="%Y-%m-%d")
            for day in sorted(set(days.to_pylist())):
                (tmp / name / f"date={day}").mkdir()
                pq.write_table(table.filter(pc.equal(days, day)), tmp / name / f"date={day}" / "part-0.parquet")
            counts[name] = table.num_rows
        for name, key in (("items", ITEMS_KEY), ("users", USERS_KEY)):
            if store.exists(key):
                (tmp / name).mkdir()
                (tmp / name / "part-0.parquet").write_bytes(store.get_bytes(key))
    return counts
