"""Forgetting a shopper, and the private zone's way back from the API's pseudonyms: on a synthetic
shop published for real, the erasure removes the shopper from every store it names (with a report
that holds no id), keeps them out of the next ingest, and events the API logged by pseudonym join
the curated events as the shopper they name, hashed once on the way out."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from shoprank.data.curated import read_events
from shoprank.features.identities import (
    add_to_erasure_list,
    erasure_list,
    fingerprint,
    forgotten,
    known_ids,
    remember,
    to_raw_ids,
)
from shoprank.features.pseudonymise import PseudonymKey, current_key, pseudonym
from shoprank.layout import ERASURE_REPORTS_PREFIX, SERVED_EVENTS_PREFIX
from shoprank.orchestration import erasure, private
from shoprank.settings import load_settings
from shoprank.storage import open_for, write_parquet

START, END = "2024-01-01", "2024-01-15"


@pytest.fixture
def published(home, tmp_path):
    from shoprank.data.sources.synthetic import write_synthetic

    shop = tmp_path / "shop"
    write_synthetic(shop, start=START, days=14, n_events=8_000, n_users=300, n_items=200)
    settings = load_settings()
    private.stage("canonical", str(shop), START, END, settings, progress=False)
    private.publish(START, END, settings)
    return settings, shop


def test_the_erasure_list_is_shared_by_concurrent_writers(home):
    store = open_for(load_settings())
    threads = [threading.Thread(target=add_to_erasure_list, args=(store, [f"u{n}"])) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert erasure_list(store) == {fingerprint(f"u{n}") for n in range(8)}
    assert add_to_erasure_list(store, ["u1"]) == 0  # already there
    mask = forgotten(pd.Series(["u1", "x", None, "u7"]), erasure_list(store))
    assert mask.tolist() == [True, False, False, True]


def test_pseudonyms_resolve_to_the_shopper_under_any_held_key_and_strangers_are_dropped(home):
    store = open_for(load_settings())
    old, new = PseudonymKey(b"old", "a"), PseudonymKey(b"new", "b")
    remember(store, ["alice", "bob"])
    assert known_ids(store) == {"alice", "bob"}
    frame = pd.DataFrame({"user_id": [pseudonym("alice", b"old"), pseudonym("bob", b"new"), "raw-carol",
                                      pseudonym("mallory", b"new"), pseudonym("alice", b"other"),
                                      pseudonym("bob", b"old")],
                          "user_key_id": [old.id, new.id, None, new.id, PseudonymKey(b"other", "c").id, "*"]})
    said: list[str] = []
    resolved = to_raw_ids(frame, store, [new, old], log=said.append)
    assert resolved["user_id"].tolist() == ["alice", "bob", "raw-carol", "bob"]  # raw-id rows pass as they are
    assert resolved["user_key_id"].isna().all()
    assert "2 row(s)" in said[0] and "1 unknown key id" in said[0]


def test_the_served_source_refuses_pseudonyms_it_cannot_resolve(home):
    from shoprank.data.errors import InputError
    from shoprank.data.sources.served import ServedSource

    settings = load_settings()
    store = open_for(settings)
    write_parquet(store, f"{SERVED_EVENTS_PREFIX}/date=2024-01-02/hour=10/events.parquet", _served_table(
        [pseudonym("alice", b"test-key")], current_key(settings.home).id))
    with pytest.raises(InputError, match="by pseudonym"):
        list(ServedSource(store=store, curated=store).events())


def test_events_the_api_logged_by_pseudonym_join_the_curated_events_as_their_shopper(published):
    settings, _ = published
    store = open_for(settings)
    shopper = read_events(store)["user_id"].iloc[0]
    key = current_key(settings.home)
    write_parquet(store, f"{SERVED_EVENTS_PREFIX}/date=2024-01-14/hour=10/events.parquet",
                  _served_table([pseudonym(shopper, key.secret)], key.id))
    staged = private.stage("served", "", "2024-01-14T00:00:00+00:00", "2024-01-15T00:00:00+00:00", settings,
                           progress=False)
    assert staged["events"] == 1
    with private.staged_batch("2024-01-14T00:00:00+00:00", "2024-01-15T00:00:00+00:00", settings) as batch:
        rows = pd.concat([pd.read_parquet(p) for p in (batch / "events").rglob("*.parquet")])
    assert rows["user_id"].tolist() == [shopper]  # a raw id in the private zone, hashed once on the way out


def test_forget_removes_the_shopper_everywhere_and_keeps_them_out_of_the_next_ingest(published):
    settings, shop = published
    store = open_for(settings)
    events = read_events(store)
    shopper = events["user_id"].value_counts().index[0]
    crossing = private.pseudonymise_night(START, END, 2, settings=settings)
    key = current_key(settings.home)
    them = pseudonym(shopper, key.secret)
    write_parquet(store, f"{SERVED_EVENTS_PREFIX}/date=2024-01-14/hour=10/events.parquet",
                  _served_table([them, pseudonym("someone-else", key.secret)], key.id))
    outcome = erasure.forget([shopper], settings)
    private_removed, public_removed = outcome["private"]["removed"], outcome["public"]["removed"]
    assert private_removed["curated/events"] == int((events["user_id"] == shopper).sum())
    assert private_removed["curated/users"] == 1 and private_removed["erasure_list_added"] == 1
    assert public_removed[f"{SERVED_EVENTS_PREFIX}"] == 1 and private_removed["features/crossing"] > 0
    assert "aggregates" in outcome["public"]["not_at_once"]
    for report in store.list(f"{ERASURE_REPORTS_PREFIX}/") + store.list("features/privacy/reports/"):
        text = store.get_bytes(report).decode()
        assert shopper not in text and them not in text
    assert shopper not in set(read_events(store)["user_id"])
    from shoprank.features.crossing import read_crossing, read_table

    manifest = read_crossing(store, crossing["crossing"])  # still whole: its manifest follows the rewrite
    assert them not in set(read_table(store, manifest, "interactions")["user_key"])
    # the next night's ingest of the same export: the erasure list keeps them out
    staged = private.stage("canonical", str(shop), START, END, settings, progress=False)
    assert staged["forgotten_rows"] > 0
    with private.staged_batch(START, END, settings) as batch:
        again = pd.concat([pd.read_parquet(p) for p in (batch / "events").rglob("*.parquet")])
    assert shopper not in set(again["user_id"]) and len(again) > 0


def test_an_erasure_an_admin_queued_by_pseudonym_is_resolved_and_done(published):
    from shoprank.features.choices import erased
    from shoprank.serving.api.privacy import PrivacyLists

    settings, _ = published
    store = open_for(settings)
    shopper = read_events(store)["user_id"].iloc[0]
    key = current_key(settings.home)
    them, nobody = pseudonym(shopper, key.secret), pseudonym("nobody-known", b"x")
    lists = PrivacyLists(store)
    lists.queue_erasure(them, key.id, "support-desk")
    lists.queue_erasure(nobody, None, "support-desk")
    assert {them, nobody} <= erased(store) and lists.is_erased([them])  # tokens refused before the rest runs
    assert erasure.apply_requests(settings) == {"requests": 2, "resolved": 1, "unresolved": 1}
    assert shopper not in set(read_events(store)["user_id"])
    assert erasure.apply_requests(settings) == {"requests": 0, "resolved": 0, "unresolved": 0}  # done once
    assert erasure.apply_public(settings) == {"erasures": 2, "applied": 2}
    assert erasure.apply_public(settings) == {"erasures": 2, "applied": 0}  # each public half once
    assert json.loads(store.get_bytes("curated/erasure/list.json"))["fingerprints"] == [fingerprint(shopper)]


def _served_table(users: list[str], key_id: str):
    import pyarrow as pa

    from shoprank.data.feedback import FEEDBACK

    at = pd.Timestamp("2024-01-14T10:30", tz="UTC")
    n = len(users)
    return pa.Table.from_pydict({
        "user_id": users, "item_id": ["i1"] * n, "event_type": ["view"] * n, "event_time": [at] * n,
        "price": [None] * n, "quantity": [None] * n, "session_id": [None] * n, "query": [None] * n,
        "event_id": [f"e{i}" for i in range(n)], "request_id": [None] * n, "position": [None] * n,
        "received_at": [at] * n, "user_key_id": [key_id] * n}, schema=FEEDBACK)
