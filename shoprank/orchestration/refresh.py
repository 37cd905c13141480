"""The hourly refresh: the hour's new events are validated, published into the curated store and
turned into a fresh snapshot of the user and item features, which is materialised into the online
store incrementally. It never retrains: the nightly does.

- The gate keeps its own state (`state/validation-hourly`) and overrides (`gate_hourly.toml`), so an
  hour is never the nightly's drift reference and its volume is not judged against whole days.
- The hour is merged into its day's curated partition (the nightly later republishes the day whole).
- Publishing and materialising hold the `nightly` lock without waiting: while a nightly runs (it
  rewrites every feature) they raise LockHeld and the hour is skipped, not raced.
- Two tasks, not one: what passes between them is in the (shared) store, never on a worker's disk.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from shoprank.data import served
from shoprank.data.curated import publish_batch, read_events, read_items
from shoprank.data.ingest import Interval, ingest_batch
from shoprank.features import store as feast_store
from shoprank.features.compute import LOOKBACK, feature_snapshots
from shoprank.features.pseudonymise import current_key, to_public_interactions
from shoprank.layout import GATE_STATE_HOURLY_PREFIX
from shoprank.locks import StoreLock
from shoprank.settings import Settings, load_settings
from shoprank.storage import open_for

HOURLY_GATE = Path(__file__).resolve().parent.parent / "validation" / "gate_hourly.toml"


ROLL_ALERT_AGE_S = 2 * 3600  # an unrolled segment older than this means the roll has stopped somewhere


def roll_served(settings: Settings | None = None) -> dict:
    """Roll the API's closed event-log segments into the `served` source's hourly parquet; raise an
    alert (the orchestration's alert path) while anything is quarantined, failing or waiting too long.
    The task itself succeeds: the events that did roll are there for the hour."""
    from shoprank.orchestration.alerts import deliver  # imports airflow.sdk: only the hourly task needs it

    settings = settings or load_settings()
    store = open_for(settings, "served")
    rolled = served.roll(settings.event_log_dir, store)
    health = served.roll_health(settings.event_log_dir, store)
    problems = []
    if health.quarantined:
        problems.append(f"{health.quarantined} segment(s)/part(s) in quarantine ({len(rolled.quarantined)} "
                        f"new this run): see docs/operations.md, 'The event roll'")
    if health.failing:
        problems.append(f"{len(health.failing)} segment(s) failing with a data error: "
                        + "; ".join(f"{k}: {v}" for k, v in list(health.failing.items())[:3]))
    if health.oldest_unrolled_age_s > ROLL_ALERT_AGE_S:
        problems.append(f"the oldest unrolled segment is {health.oldest_unrolled_age_s / 3600:.1f} h old")
    if problems:
        deliver({"kind": "event_roll", "summary": "event roll: " + " | ".join(problems), **health.as_dict()},
                settings)
    return {"segments": rolled.segments, "events": rolled.events, "served_lists": rolled.requests,
            "failed": rolled.failed, "quarantined": rolled.quarantined, "health": health.as_dict()}


def _nightly_lock(settings: Settings, purpose: str):

    return StoreLock(open_for(settings), "nightly", purpose,
                     lease_s=300, wait_s=0)


def validate_and_publish(source: str, source_path: str, start: str, end: str,
                         settings: Settings | None = None) -> dict:
    """Stage the hour from its source, gate it (GateFailed stops here, nothing published), merge it
    into the curated store. An hour without events publishes nothing and says so."""
    from shoprank.validation import GateFailed, accept_batch, run_gate  # Great Expectations

    settings = settings or load_settings()
    interval = Interval.parse(start, end)
    with tempfile.TemporaryDirectory(prefix="shoprank-hour-") as scratch:
        batch = Path(scratch) / "batch"
        counts = ingest_batch(source, source_path or None, interval, batch, progress=False)
        if not counts.get("events"):
            return {"events": 0, "published_days": []}
        state = open_for(settings, "store", GATE_STATE_HOURLY_PREFIX)
        result = run_gate(batch, interval_start=interval.start, interval_end=interval.end, state_dir=state,
                          reports_dir=settings.reports_dir / "validation-hourly", config_path=HOURLY_GATE)
        print(result.summary, flush=True)
        if not result.passed:
            raise GateFailed(result)
        with _nightly_lock(settings, f"hourly publish {start}..{end}"):
            days = publish_batch(open_for(settings), batch, merge=True)
        accept_batch(result, state)
    return {"events": int(counts["events"]), "published_days": days, "findings": len(result.findings)}


def materialise_snapshot(end: str, settings: Settings | None = None) -> dict:
    """Snapshot the user and item features as of `end` from the curated events, add it to the
    offline sources, materialise what is new into the online store."""
    settings = settings or load_settings()
    at = Interval.parse("1970-01-01", end).end
    store = open_for(settings)
    with _nightly_lock(settings, f"hourly refresh to {at}"):
        events = read_events(store, start=at - LOOKBACK, end=at)
        public = to_public_interactions(events, current_key(settings.home).secret)
        users, items = feature_snapshots(public, read_items(store), [at])
        feast_store.append_offline_snapshot(settings, users, items)
        fs = feast_store.materialise_incremental(settings, at)
    ends = {view.name: str(view.materialization_intervals[-1][1]) for view in fs.list_feature_views()
            if view.materialization_intervals}
    return {"snapshot": str(at), "user_rows": len(users), "item_rows": len(items), "materialised_to": ends}
