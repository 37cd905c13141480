"""The private stage: every task that touches raw user data, and the only place the
pseudonymisation key is used by the nightly and the hourly refresh.

Why its own module: these functions run only in the private zone (the Airflow edge workers on
queue `private-data`, role `data_prep`; locally, their own processes with the private settings,
see `zone_runner`). They read the source, `curated/`, `served/` and `state/`, and what they hand on
is one crossing under `features/crossing/<batch>/` (`shoprank.features.crossing`). The public KFP
pipeline and the hourly materialisation start from its manifest and never see a raw id, a session
id or an unscrubbed query.

Tasks pass a staged batch through the store (`curated/staging/<interval>`), never through a
worker's disk: on the cluster each task may run on another edge worker.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from shoprank.data.curated import iter_event_days, iter_session_chunks, publish_batch, read_items
from shoprank.data.ingest import Interval, ingest_batch
from shoprank.data.search_log import SEARCH_LOG_COLUMNS
from shoprank.data.served import read_served, rule_placed_items
from shoprank.features.crossing import batch_name, drop_old_crossings, write_crossing
from shoprank.features.identities import erasure_list, forgotten, to_raw_ids
from shoprank.features.pseudonymise import (
    load_keys,
    to_public_impressions,
    to_public_interactions,
    to_public_queries,
)
from shoprank.features.snapshots import LOOKBACK, snapshot_times
from shoprank.layout import GATE_STATE_HOURLY_PREFIX, GATE_STATE_PREFIX, staging_prefix
from shoprank.locks import LockHeld, nightly_lock
from shoprank.settings import Settings, load_settings
from shoprank.storage import get_dir, open_for, put_dir

STAGED_MANIFEST = "_staged.json"
PUBLISHED_PREFIX = "state/published"  # per interval, what publishing did: a retry after it returns it
HOURLY_GATE = Path(__file__).resolve().parent.parent / "validation" / "gate_hourly.toml"
#: Each gate's drift reference and overrides: an hour is never the nightly's reference.
GATES = {"nightly": (GATE_STATE_PREFIX, None, "validation"),
         "hourly": (GATE_STATE_HOURLY_PREFIX, HOURLY_GATE, "validation-hourly")}


def stage(source: str, source_path: str, start: str, end: str, settings: Settings | None = None,
          progress: bool = True) -> dict:
    """Ingest the interval from its source and stage it in the private store; the row counts."""
    settings = settings or load_settings()
    interval = Interval.parse(start, end)
    with tempfile.TemporaryDirectory(prefix="shoprank-stage-") as scratch:
        batch = Path(scratch) / "batch"
        store = open_for(settings)
        options: dict = {}
        if source == "served":  # the API's pseudonyms back to raw ids, like every other source's
            keys = load_keys(settings.home)
            options["resolve"] = lambda frame: to_raw_ids(frame, store, keys)
        counts = ingest_batch(source, source_path or None, interval, batch, progress=progress, **options)
        removed = drop_forgotten(batch, erasure_list(store))
        counts = {**counts, "events": counts["events"] - removed.get("events", 0),
                  "forgotten_rows": sum(removed.values())}
        prefix = staging_prefix(start, end)
        store.delete_prefix(f"{prefix}/")  # a half-uploaded earlier try
        put_dir(store, prefix, batch, STAGED_MANIFEST,
                json.dumps({"source": source, "interval": [start, end], "counts": counts}).encode())
    return {**counts, "source": source, "staged": prefix}


def drop_forgotten(batch: Path, fingerprints: set[str]) -> dict[str, int]:
    """Remove the rows of every shopper on the erasure list from an ingested batch (events and
    users), so a late event or a re-sent export cannot bring a forgotten shopper back; the rows
    removed per table."""
    import pyarrow.parquet as pq

    removed: dict[str, int] = {}
    if not fingerprints:
        return removed
    for path in sorted(batch.rglob("*.parquet")):
        table_name = path.relative_to(batch).parts[0]
        table = pq.read_table(path)
        if table_name == "items" or "user_id" not in table.column_names:
            continue
        mask = forgotten(table.column("user_id").to_pandas(), fingerprints).to_numpy()
        if mask.any():
            removed[table_name] = removed.get(table_name, 0) + int(mask.sum())
            pq.write_table(table.filter(~mask), path)
    return removed


@contextmanager
def staged_batch(start: str, end: str, settings: Settings) -> Iterator[Path]:
    """The staged batch of the interval, downloaded to a scratch folder for the block."""
    with tempfile.TemporaryDirectory(prefix="shoprank-staged-") as scratch:
        get_dir(open_for(settings), staging_prefix(start, end), Path(scratch), STAGED_MANIFEST)
        yield Path(scratch)


def judge(start: str, end: str, settings: Settings, gate: str = "nightly"):
    """The gate's verdict on the staged batch; GateFailed (the staging copy deleted: nothing of a
    refused batch is kept, the next try stages it again). Accepting it is the caller's next step."""
    from shoprank.validation import GateFailed, run_gate  # Great Expectations

    state_prefix, config, reports = GATES[gate]
    interval = Interval.parse(start, end)
    with staged_batch(start, end, settings) as batch:
        result = run_gate(batch, interval_start=interval.start, interval_end=interval.end,
                          state_dir=open_for(settings, "store", state_prefix),
                          reports_dir=settings.reports_dir / reports, **({"config_path": config} if config else {}))
    print(result.summary, flush=True)
    if not result.passed:
        open_for(settings).delete_prefix(f"{staging_prefix(start, end)}/")
        raise GateFailed(result)
    return result


def accept(result, settings: Settings, gate: str = "nightly") -> dict:
    """Make a passed batch the gate's drift reference."""
    from shoprank.validation import accept_batch

    accept_batch(result, open_for(settings, "store", GATES[gate][0]))
    return {"passed": True, "findings": len(result.findings), "data_docs": str(result.data_docs or "")}


def validate(start: str, end: str, settings: Settings | None = None) -> dict:
    """The night's gate: judge the staged batch and accept it as the drift reference (the night
    publishes it next; a night is rerun whole, so its reference may move before publishing)."""
    settings = settings or load_settings()
    return accept(judge(start, end, settings), settings)


def publish(start: str, end: str, settings: Settings | None = None, merge: bool = False,
            wait_s: float = 600.0) -> dict:
    """Copy the staged (and gated) batch into `curated/`, then drop the staging copy. `merge`: add
    to the days already there (an hour), instead of replacing them (a night republishes days whole).
    Holds the nightly lock (waiting up to `wait_s` for an hour being published to finish)."""
    settings = settings or load_settings()
    store = open_for(settings)
    marker = f"{PUBLISHED_PREFIX}/{staging_prefix(start, end).rsplit('/', 1)[1]}.json"
    if not store.exists(f"{staging_prefix(start, end)}/{STAGED_MANIFEST}") and store.exists(marker):
        return json.loads(store.get_bytes(marker))  # a retry after the staging copy went: done already
    try:
        with staged_batch(start, end, settings) as batch, nightly_lock(store, f"publish {start}..{end}", wait_s):
            days = publish_batch(store, batch, merge=merge)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}: nothing staged for {start}..{end}; run the ingest (stage) task again") from err
    done = {"days_published": len(days), "published_days": days}
    store.put_bytes(marker, json.dumps(done).encode())
    store.delete_prefix(f"{staging_prefix(start, end)}/")
    return done


def pseudonymise(start: str, end: str, times: list[pd.Timestamp], settings: Settings | None = None,
                 flow: str = "nightly", source: str = "") -> dict:
    """Hand the batch over: the curated events from `LOOKBACK` before the first snapshot time to
    `end`, pseudonymised with the current key, the served lists' impressions, the scrubbed search
    log and the catalogue, written as the batch's crossing. Returns the crossing's manifest key (the
    public pipeline's one input) and its row counts."""
    settings = settings or load_settings()
    store = open_for(settings)
    at_end = Interval.parse(start, end).end
    window = (times[0] - LOOKBACK, at_end)
    keys = load_keys(settings.home)
    key = keys[0]
    gone = erasure_list(store)
    feedback = to_raw_ids(read_served(open_for(settings, "served"), "events", start=window[0], end=window[1]),
                          store, keys)  # the API's pseudonyms back to raw ids: hashed once below
    feedback = feedback[~forgotten(feedback["user_id"], gone)]

    def kept(events: pd.DataFrame) -> pd.DataFrame:
        return events[~forgotten(events["user_id"], gone)]

    # the events a day (interactions) or a chunk of whole sessions (the search log) at a time: the
    # step holds one part, whatever the window's size
    tables = {"interactions": (to_public_interactions(kept(day), key.secret)
                               for day in iter_event_days(store, *window)),
              "queries": (to_public_queries(kept(chunk), key.secret)
                          for chunk in iter_session_chunks(store, *window, columns=SEARCH_LOG_COLUMNS)),
              "impressions": to_public_impressions(feedback, key.secret, rule_placed_items(read_served(
                  open_for(settings, "served"), "requests", start=window[0], end=window[1]))),
              "catalogue": read_items(store)}
    written_at = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:6]}"
    crossing = write_crossing(store, batch_name(flow, start, end, written_at), tables, interval=(start, end),
                              source=source, snapshot_times=times, key_id=key.id)
    drop_old_crossings(store, flow)
    return {"crossing": crossing.manifest_key, "snapshots": list(crossing.snapshot_times),
            **{f"{name}_rows": entry["rows"] for name, entry in crossing.tables.items()}}


def hand_over(source: str, source_path: str, start: str, end: str, times: list[pd.Timestamp],
              settings: Settings | None = None) -> dict:
    """Stage, gate, publish and pseudonymise in this process: a bench's or a test's night, in the
    private zone's settings (the DAG runs each as its own task)."""
    stage(source, source_path, start, end, settings, progress=False)
    validate(start, end, settings)
    publish(start, end, settings)
    return pseudonymise(start, end, times, settings, "nightly", source)


def pseudonymise_night(start: str, end: str, n_snapshots: int, step_days: int = 7, settings: Settings | None = None,
                       source: str = "") -> dict:
    """The nightly crossing: `n_snapshots` snapshot times `step_days` apart, the last at `end`."""
    at_end = Interval.parse(start, end).end
    return pseudonymise(start, end, snapshot_times(at_end, n_snapshots, step_days), settings, "nightly", source)


def pseudonymise_hour(start: str, end: str, settings: Settings | None = None, source: str = "") -> dict:
    """The hourly crossing: one snapshot time, the hour's end."""
    settings = settings or load_settings()
    with nightly_lock(open_for(settings), f"hourly crossing to {end}"):
        return pseudonymise(start, end, [Interval.parse(start, end).end], settings, "hourly", source)


def validate_and_publish_hour(source: str, source_path: str, start: str, end: str,
                              settings: Settings | None = None) -> dict:
    """The hour through the same stage, gate (hourly overrides and reference) and publishing as a
    night, merged into its day. An hour without events publishes nothing and says so."""
    settings = settings or load_settings()
    counts = stage(source, source_path, start, end, settings, progress=False)
    staged = f"{staging_prefix(start, end)}/"
    if not counts.get("events"):
        open_for(settings).delete_prefix(staged)
        return {"events": 0, "published_days": []}
    result = judge(start, end, settings, gate="hourly")
    try:
        published = publish(start, end, settings, merge=True, wait_s=0)
    except LockHeld:  # a night is on: the hour is skipped whole, and is not the gate's reference
        open_for(settings).delete_prefix(staged)
        raise
    accept(result, settings, gate="hourly")  # only a published hour becomes the reference
    return {"events": int(counts["events"]), "published_days": published["published_days"],
            "findings": len(result.findings)}
