"""The private zone's two lists about shoppers: which raw ids it knows (to resolve the API's
pseudonyms back to them), and which it must forget (the erasure list every ingest applies).

Why resolve at all: the public API logs events by pseudonym, while the curated store keys shoppers
by raw id (the shop's exports do). The private stage maps the API's events back to raw ids before
they join the curated events, so every row is pseudonymised exactly once on its way out, with the
current key, whatever key the API logged it under. The raw ids it can resolve are those of the
curated users and those the token issuer has named (`remember`): a pseudonym of anyone else is
dropped and counted (no token was issued for it here).

Why fingerprints for the erasure list: the list must outlive key rotations (a late event for a
forgotten shopper must stay out under any future key), so it cannot be pseudonyms; it is SHA-256 of
the raw id, kept in the private zone next to the raw data it filters, and never leaves it.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.features.pseudonymise import PseudonymKey, pseudonym
from shoprank.layout import CURATED_USERS_KEY, ERASURE_LIST_KEY, IDENTITY_PREFIX
from shoprank.storage import ObjectStore

ISSUED_PREFIX = f"{IDENTITY_PREFIX}/issued"
ANY_KEY = "*"  # `user_key_id` of a pseudonym logged before the API knew its key: any key held


def remember(store: ObjectStore, user_ids: Iterable[str]) -> int:
    """Record raw ids the issuer named (one small part per call; `known_ids` reads them all)."""
    ids = sorted({str(u) for u in user_ids})
    if ids:
        sink = io.BytesIO()
        pq.write_table(pa.table({"user_id": pa.array(ids, pa.string())}), sink)
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{uuid.uuid4().hex[:8]}.parquet"
        store.put_bytes(f"{ISSUED_PREFIX}/{name}", sink.getvalue())
    return len(ids)


def known_ids(store: ObjectStore) -> set[str]:
    """Every raw id the private zone can resolve a pseudonym to."""
    found: set[str] = set()
    if store.exists(CURATED_USERS_KEY):
        found.update(pq.read_table(io.BytesIO(store.get_bytes(CURATED_USERS_KEY)), columns=["user_id"])
                     .column(0).to_pylist())
    for key in store.list(f"{ISSUED_PREFIX}/"):
        found.update(pq.read_table(io.BytesIO(store.get_bytes(key))).column("user_id").to_pylist())
    found.discard(None)
    return found


def to_raw_ids(frame: pd.DataFrame, store: ObjectStore, keys: list[PseudonymKey],
               log=print) -> pd.DataFrame:
    """`frame` (the served source's rows: `user_id`, `user_key_id`) with every pseudonym replaced by the
    raw id it names and `user_key_id` cleared. Rows logged with raw ids (no `user_key_id`, from before
    the API took pseudonyms) pass as they are; a pseudonym no known id makes is dropped and counted."""
    if "user_key_id" not in frame.columns or frame["user_key_id"].isna().all():
        return frame
    named = frame["user_key_id"].notna()
    by_key = {k.id: k for k in keys}
    needed = set(frame.loc[named, "user_key_id"].unique())
    any_key = ANY_KEY in needed  # a server-to-server caller named the shopper under whichever key was in use
    unknown_keys = needed - set(by_key) - {ANY_KEY}
    usable = set(by_key) if any_key else needed - unknown_keys
    lookup: dict[tuple[str, str], str] = {}
    if usable:
        for raw in known_ids(store):
            for key_id in usable:
                made = pseudonym(raw, by_key[key_id].secret)
                lookup[(key_id, made)] = raw
                if any_key:
                    lookup[(ANY_KEY, made)] = raw
    resolved = [lookup.get((k, p)) for k, p in zip(frame.loc[named, "user_key_id"], frame.loc[named, "user_id"],
                                                   strict=True)]
    out = frame.copy()
    out.loc[named, "user_id"] = resolved
    out["user_key_id"] = None
    dropped = out["user_id"].isna() & named
    if dropped.any():
        log(f"served events: {int(dropped.sum())} row(s) of {out.loc[dropped, 'user_id'].size} name a pseudonym "
            f"this zone cannot resolve ({len(unknown_keys)} unknown key id(s)); dropped")
    return out[~dropped].reset_index(drop=True)


def fingerprint(user_id: str) -> str:
    return hashlib.sha256(b"shoprank-erasure:" + str(user_id).encode()).hexdigest()


def erasure_list(store: ObjectStore) -> set[str]:
    """Fingerprints of every forgotten shopper."""
    if not store.exists(ERASURE_LIST_KEY):
        return set()
    return set(json.loads(store.get_bytes(ERASURE_LIST_KEY))["fingerprints"])


def add_to_erasure_list(store: ObjectStore, user_ids: Iterable[str]) -> int:
    """Put shoppers on the list (compare-and-swap: two erasures at once both land); how many are new."""
    new = {fingerprint(u) for u in user_ids}
    for _ in range(20):
        current = store.read_versioned(ERASURE_LIST_KEY)
        listed = set(json.loads(current[0])["fingerprints"]) if current else set()
        if new <= listed:
            return 0
        body = json.dumps({"fingerprints": sorted(listed | new)}).encode()
        if store.put_if(ERASURE_LIST_KEY, body, current[1] if current else None) is not None:
            return len(new - listed)
    raise RuntimeError(f"{store.uri(ERASURE_LIST_KEY)}: could not update the erasure list (too many writers)")


def forgotten(user_ids: pd.Series, fingerprints: set[str]) -> pd.Series:
    """A mask of the rows whose shopper is on the erasure list (each distinct id hashed once)."""
    if not fingerprints or user_ids.empty:
        return pd.Series(False, index=user_ids.index)
    uniques = pd.unique(user_ids.dropna())
    gone = {u for u in uniques if fingerprint(u) in fingerprints}
    return user_ids.isin(gone)
