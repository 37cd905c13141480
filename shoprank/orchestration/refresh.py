"""The hourly refresh's public half: a fresh snapshot of the user and item features from the hour's
crossing (the nightly's feature job, on the engine the settings name), added to the offline sources
and materialised into the online store incrementally. It never retrains: the nightly does.

The private half (roll the event log, stage, gate, publish, pseudonymise) is the nightly's own
functions in `orchestration.private`, run in the private zone; this half reads only the crossing
they hand over, with the same snapshot and Feast functions as the nightly's public steps.
Materialising holds the `nightly` lock without waiting: while a nightly runs (it rewrites every
feature) it raises LockHeld and the hour is skipped, not raced.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa

from shoprank.data import served
from shoprank.features import store as feast_store
from shoprank.features.choices import erased, opted_out
from shoprank.features.crossing import CrossingError, read_crossing, table_bytes
from shoprank.features.engine.runner import compute_tables, snapshot_parts
from shoprank.layout import KEY_RECORD
from shoprank.locks import nightly_lock
from shoprank.settings import Settings, load_settings
from shoprank.storage import open_for


def materialise_hour(crossing_key: str, settings: Settings | None = None) -> dict:
    """Snapshot the features as of the crossing's one snapshot time, add it to the offline sources,
    materialise what is new into the online store."""
    settings = settings or load_settings()
    store = open_for(settings)
    with nightly_lock(store, f"hourly refresh from {crossing_key}"):
        crossing = read_crossing(store, crossing_key)
        served_key = json.loads(store.get_bytes(KEY_RECORD))["key_id"] if store.exists(KEY_RECORD) else None
        if served_key != crossing.key_id:
            raise CrossingError(f"the hour's crossing {crossing_key} was made with pseudonymisation key "
                                f"{crossing.key_id}, the online store with {served_key}: the nightly re-keys "
                                f"the store first (a rotation, or no night has run yet)")
        at = crossing.times[-1]
        with tempfile.TemporaryDirectory(prefix="hourly-features-") as scratch:
            work = Path(scratch)
            for name in ("interactions", "catalogue"):
                (work / f"{name}.parquet").write_bytes(table_bytes(store, crossing, name))
            compute_tables(settings, work / "interactions.parquet", work / "catalogue.parquet", [at],
                           work / "tables", tables=("user_stats", "item_stats"), run_id=crossing.batch,
                           store_inputs=(crossing.tables["interactions"]["key"], crossing.tables["catalogue"]["key"]))
            excluded = opted_out(store) | erased(store)  # no personal rows for them
            users = pa.concat_tables(snapshot_parts(work / "tables", "user_stats", [at], excluded))
            items = pa.concat_tables(snapshot_parts(work / "tables", "item_stats", [at]))
        feast_store.append_offline_snapshot(settings, users, items)
        fs = feast_store.materialise_incremental(settings, at)
    ends = {view.name: str(view.materialization_intervals[-1][1]) for view in fs.list_feature_views()
            if view.materialization_intervals}
    return {"snapshot": str(at), "user_rows": users.num_rows, "item_rows": items.num_rows, "materialised_to": ends}


ROLL_ALERT_AGE_S = 2 * 3600  # an unrolled segment older than this means the roll has stopped somewhere


def roll_events(settings: Settings | None = None) -> dict:
    """Roll the API's closed event-log segments into the `served` source's hourly parquet (the API's
    own roll does so every 10 s; this is the backstop for a log whose API is gone, where the log is
    on this machine), and raise an alert (the orchestration's alert path) while anything is
    quarantined, failing or waiting too long. The task itself succeeds: the events that did roll are
    there for the hour. Public zone: the log holds pseudonyms and scrubbed queries only."""
    from shoprank.orchestration.alerts import deliver  # imports airflow.sdk: only the hourly task needs it

    settings = settings or load_settings()
    store = open_for(settings, "served")
    rolled = served.roll(settings.event_log_dir, store, erased=frozenset(erased(open_for(settings))))
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
    # counts only: what a segment failed with may quote its content, and this result leaves the zone
    return {"segments": rolled.segments, "events": rolled.events, "served_lists": rolled.requests,
            "failed": len(rolled.failed), "quarantined": len(rolled.quarantined),
            "health": {"quarantined": health.quarantined, "failing": len(health.failing),
                       "oldest_unrolled_age_s": health.oldest_unrolled_age_s}}
