"""The hourly refresh's public half: a fresh snapshot of the user and item features from the hour's
crossing, added to the offline sources and materialised into the online store incrementally. It
never retrains: the nightly does.

The private half (roll the event log, stage, gate, publish, pseudonymise) is the nightly's own
functions in `orchestration.private`, run in the private zone; this half reads only the crossing
they hand over, with the same snapshot and Feast functions as the nightly's public steps.
Materialising holds the `nightly` lock without waiting: while a nightly runs (it rewrites every
feature) it raises LockHeld and the hour is skipped, not raced.
"""

from __future__ import annotations

import json

from shoprank.features import store as feast_store
from shoprank.features.choices import erased, opted_out, without_choices
from shoprank.features.compute import feature_snapshots
from shoprank.features.crossing import CrossingError, read_crossing, read_table
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
        users, items = feature_snapshots(read_table(store, crossing, "interactions"),
                                         read_table(store, crossing, "catalogue"), [at])
        users = without_choices(users, opted_out(store) | erased(store))  # no personal rows for them
        feast_store.append_offline_snapshot(settings, users, items)
        fs = feast_store.materialise_incremental(settings, at)
    ends = {view.name: str(view.materialization_intervals[-1][1]) for view in fs.list_feature_views()
            if view.materialization_intervals}
    return {"snapshot": str(at), "user_rows": len(users), "item_rows": len(items), "materialised_to": ends}
