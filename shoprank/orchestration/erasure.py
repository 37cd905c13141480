"""Forget a shopper everywhere: the right to erasure, carried into every store the system keeps.

Two halves, one per zone, because no process may hold both the raw id and the public stores:
- `forget_private` (the private zone: `shoprank privacy forget USER_ID`, or the erasure requests an
  admin queued through the API, `apply_requests`): puts the shopper on the erasure list (every later
  ingest drops them, so a late event cannot bring them back), deletes their rows from the curated
  events and users, the staged batches, the raw exports kept as parquet, the issuer's list of ids and
  every crossing (interactions, impressions, the search log: this zone writes them), and publishes
  their pseudonyms (under every key held) on the erased list the public side reads.
- `forget_public` (the public zone, with pseudonyms only): deletes their rows from the served lists
  and events, the derived features and Feast offline sources, the online store (batch row and live
  session), and the KFP artifacts; the
  API refuses their tokens from the next refresh of its lists. The co-occurrence, kNN and popular
  aggregates are rebuilt from the crossings at the next night, without them.
Each half writes a report naming each store and how many rows it removed. A report holds no raw id
and no pseudonym: an erasure is named by its own id.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shoprank.features.crossing import forget_in_crossings
from shoprank.features.identities import ISSUED_PREFIX, add_to_erasure_list, known_ids
from shoprank.features.pseudonymise import load_keys, pseudonym
from shoprank.layout import (
    CURATED_EVENTS_PREFIX,
    CURATED_USERS_KEY,
    DERIVED_PREFIX,
    ERASED_PREFIX,
    ERASURE_REPORTS_PREFIX,
    ERASURE_REQUESTS_PREFIX,
    PRIVACY_PREFIX,
    SERVED_EVENTS_PREFIX,
    SERVED_REQUESTS_PREFIX,
    STAGING_PREFIX,
)
from shoprank.settings import Settings, load_settings
from shoprank.storage import (
    ObjectStore,
    drop_json_entries_under,
    drop_rows,
    drop_rows_under,
    open_for,
    open_store,
)

PUBLIC_REPORTS_PREFIX = f"{PRIVACY_PREFIX}/reports"
#: What an erasure cannot reach at once, and how long those copies live (the privacy docs say how).
NOT_AT_ONCE = {
    "s3_noncurrent_versions": "old object versions under S3 versioning: expired by the buckets' lifecycle "
                              "rule after 30 days",
    "kept_model_versions": "model versions trained before the erasure (the registry keeps 5; a rollback "
                           "could serve one): replaced within 5 nights; they hold weights, not rows",
    "redis_snapshots": "the online store's RDB/AOF snapshots: overwritten at the next snapshot (hours); "
                       "backups expire after 7 days",
    "quarantined_segments": "event-log segments in served/quarantine/: erased when retried or purged "
                            "(`shoprank events roll --retry-quarantined`), kept at most 14 days",
}


@dataclass
class ErasureReport:
    erasure_id: str
    zone: str
    stores: dict[str, int] = field(default_factory=dict)  # store -> rows (or objects) removed
    pending: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict:
        return {"erasure_id": self.erasure_id, "zone": self.zone, "at": round(self.at, 3), "removed": self.stores,
                "not_at_once": self.pending}


def _write_report(store: ObjectStore, prefix: str, report: ErasureReport) -> str:
    key = f"{prefix}/{report.erasure_id}-{report.zone}.json"
    store.put_bytes(key, json.dumps(report.as_dict(), indent=2).encode())
    return key


def forget_private(user_ids: list[str], settings: Settings | None = None, raw_root: str = "",
                   erasure_id: str = "") -> tuple[ErasureReport, set[str]]:
    """The private half for shoppers named by raw id; (its report, their pseudonyms under every key
    held). `raw_root`: where the shop's exports land as parquet, if they are kept (empty: none)."""
    settings = settings or load_settings()
    store = open_for(settings)
    ids = {str(u) for u in user_ids if str(u)}
    if not ids:
        raise ValueError("name at least one shopper to forget")
    report = ErasureReport(erasure_id or uuid.uuid4().hex[:16], "private")
    report.stores["erasure_list_added"] = add_to_erasure_list(store, ids)  # first: later ingests drop them
    report.stores["curated/events"] = sum(drop_rows_under(store, f"{CURATED_EVENTS_PREFIX}/", "user_id", ids).values())
    report.stores["curated/users"] = (drop_rows(store, CURATED_USERS_KEY, "user_id", ids)
                                      if store.exists(CURATED_USERS_KEY) else 0)
    report.stores["curated/staging"] = sum(drop_rows_under(store, f"{STAGING_PREFIX}/", "user_id", ids).values())
    report.stores["curated/identity"] = sum(drop_rows_under(store, f"{ISSUED_PREFIX}/", "user_id", ids).values())
    if raw_root:
        raw = open_store(raw_root, settings.s3_endpoint_url or None)
        report.stores["raw"] = sum(drop_rows_under(raw, "", "user_id", ids).values())
    keys = load_keys(settings.home)
    pseudonyms = {pseudonym(u, k.secret) for u in ids for k in keys}
    report.stores["features/crossing"] = forget_in_crossings(store, pseudonyms)  # this zone writes them
    for p in sorted(pseudonyms):  # the crossing of the erasure: pseudonyms only, so the public side acts
        store.put_bytes(f"{ERASED_PREFIX}/{p}.json", json.dumps({"erasure_id": report.erasure_id}).encode())
    report.stores["erased_pseudonyms_published"] = len(pseudonyms)
    _write_report(store, ERASURE_REPORTS_PREFIX, report)
    return report, pseudonyms


def forget_public(pseudonyms: set[str], settings: Settings | None = None, erasure_id: str = "",
                  kfp_root: str = "") -> ErasureReport:
    """The public half, by pseudonym: every public store, then the report."""
    from shoprank.features import store as feast_store
    from shoprank.features.online import forget_online

    settings = settings or load_settings()
    store = open_for(settings)
    served = open_for(settings, "served")
    report = ErasureReport(erasure_id or uuid.uuid4().hex[:16], "public")
    for prefix in (SERVED_EVENTS_PREFIX, SERVED_REQUESTS_PREFIX):
        report.stores[prefix] = sum(drop_rows_under(served, f"{prefix}/", "user_id", pseudonyms).values())
    report.stores["features/derived"] = sum(drop_rows_under(store, f"{DERIVED_PREFIX}/", "user_key",
                                                            pseudonyms).values())
    if settings.feast_offline_root:
        offline = open_for(settings, "offline")
        report.stores["feast_offline"] = sum(drop_rows_under(offline, "", "user_key", pseudonyms).values())
    try:
        fs = feast_store.feature_store(settings)
        online = forget_online(fs, pseudonyms)
    except FileNotFoundError:  # no Feast repository applied yet: nothing online to delete
        online = {}
    report.stores.update({f"online:{view}": n for view, n in online.items()})
    root = kfp_root or str(settings.home / "kfp")
    if root.startswith("s3://") or Path(root).is_dir():
        kfp = open_store(root, settings.s3_endpoint_url or None)
        report.stores["kfp_artifacts"] = (sum(drop_rows_under(kfp, "", "user_key", pseudonyms).values())
                                          + sum(drop_json_entries_under(kfp, "", pseudonyms).values()))
    report.pending = dict(NOT_AT_ONCE)
    report.pending["aggregates"] = "co-occurrence, kNN and popular lists: rebuilt without them at the next night"
    _write_report(store, PUBLIC_REPORTS_PREFIX, report)
    return report


def forget(user_ids: list[str], settings: Settings | None = None, raw_root: str = "", kfp_root: str = "") -> dict:
    """Both halves, for a machine that holds both zones (the local default); the two reports."""
    settings = settings or load_settings()
    private, pseudonyms = forget_private(user_ids, settings, raw_root)
    public = forget_public(pseudonyms, settings, private.erasure_id, kfp_root)
    return {"erasure_id": private.erasure_id, "private": private.as_dict(), "public": public.as_dict()}


def apply_requests(settings: Settings | None = None) -> dict:
    """The private half of the erasures admins queued through the API (by pseudonym): resolve each
    to the shopper (this zone holds the keys and the known ids), forget them here, drop the request.
    A pseudonym that names nobody known has nothing here to delete; it stays on the erased list the
    API already wrote, and the public half deletes what carries it. Counts only (the result leaves
    the zone)."""
    settings = settings or load_settings()
    store = open_for(settings)
    requests = [k for k in store.list(f"{ERASURE_REQUESTS_PREFIX}/") if k.endswith(".json")]
    done = {"requests": len(requests), "resolved": 0, "unresolved": 0}
    if not requests:
        return done
    keys = load_keys(settings.home)
    found = {pseudonym(raw, key.secret): raw for raw in known_ids(store) for key in keys}
    for request_key in requests:
        request = json.loads(store.get_bytes(request_key))
        raw = found.get(request["pseudonym"])
        if raw is not None:
            forget_private([raw], settings, erasure_id=request["request_id"])
            done["resolved"] += 1
        else:
            forget_in_crossings(store, {request["pseudonym"]})
            store.put_bytes(f"{ERASED_PREFIX}/{request['pseudonym']}.json",
                            json.dumps({"erasure_id": request["request_id"]}).encode())
            done["unresolved"] += 1
        store.delete_prefix(request_key)
    return done


def apply_public(settings: Settings | None = None, kfp_root: str = "") -> dict:
    """The public half of every erasure whose pseudonyms are on the erased list and whose public
    report is not written yet (the report is written last: a half that died is run again)."""
    settings = settings or load_settings()
    store = open_for(settings)
    pending: dict[str, set[str]] = {}
    for key in store.list(f"{ERASED_PREFIX}/"):
        if key.endswith(".json"):
            erasure_id = json.loads(store.get_bytes(key)).get("erasure_id") or "unnamed"
            pending.setdefault(erasure_id, set()).add(key.rsplit("/", 1)[-1].removesuffix(".json"))
    ran = []
    for erasure_id, pseudonyms in sorted(pending.items()):
        if not store.exists(f"{PUBLIC_REPORTS_PREFIX}/{erasure_id}-public.json"):
            forget_public(pseudonyms, settings, erasure_id, kfp_root)
            ran.append(erasure_id)
    return {"erasures": len(pending), "applied": len(ran)}
