"""The crossing: the one format in which data leaves the private zone."""

import json

import pandas as pd
import pytest

from shoprank.data.schema import ITEMS
from shoprank.features.crossing import PUBLIC_COLUMNS, CrossingError, read_crossing, read_table, write_crossing
from shoprank.features.pseudonymise import to_public_interactions, to_public_queries
from shoprank.layout import crossing_prefix
from shoprank.storage import open_store

AT = pd.Timestamp("2024-01-08", tz="UTC")


def raw_events() -> pd.DataFrame:
    times = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    return pd.DataFrame({"event_time": times, "user_id": ["u1", "u1", "u2", "u2"],
                         "item_id": ["i1", None, "i2", "i1"], "event_type": ["view", "search", "purchase", "view"],
                         "price": [1.0, None, 2.0, 1.0], "quantity": [1, None, 1, 1],
                         "session_id": ["s1", "s1", "s2", "s2"],
                         "query": [None, "shoes mail me at jo@example.com", None, None]})


def tables() -> dict[str, pd.DataFrame]:
    events = raw_events()
    catalogue = pd.DataFrame({"item_id": ["i1", "i2"], "category": ["c", "c"], "brand": ["b", "b"],
                              "price": [1.0, 2.0], "title": ["red shoe", "blue shoe"]})
    impressions = pd.DataFrame({c: pd.Series(dtype="object") for c in PUBLIC_COLUMNS["impressions"]})
    return {"interactions": to_public_interactions(events, b"k"), "queries": to_public_queries(events, b"k"),
            "impressions": impressions, "catalogue": catalogue[ITEMS.names]}


def write(store, **changed) -> object:
    return write_crossing(store, "nightly", {**tables(), **changed}, interval=("2024-01-01", "2024-01-08"),
                          source="synthetic", snapshot_times=[AT], key_id="abc")


def test_a_crossing_round_trips_with_what_the_private_stage_decided(tmp_path):
    store = open_store(str(tmp_path))
    written = write(store)
    crossing = read_crossing(store, crossing_prefix("nightly"))
    assert crossing == written and crossing.times == [AT] and crossing.key_id == "abc"
    queries = read_table(store, crossing, "queries")
    assert "jo@example.com" not in " ".join(queries["query"])  # scrubbed before it crossed
    assert set(read_table(store, crossing, "interactions")["user_key"]).isdisjoint({"u1", "u2"})


@pytest.mark.parametrize("column", ["user_id", "session_id", "age_group", "region"])
def test_a_table_with_a_raw_column_is_refused_and_nothing_is_written(tmp_path, column):
    store = open_store(str(tmp_path))
    leaking = tables()["interactions"].assign(**{column: "raw"})
    with pytest.raises(CrossingError, match=rf"'interactions'.*extra \['{column}'\]"):
        write(store, interactions=leaking)
    assert store.list("features/") == []


def test_a_missing_table_is_named(tmp_path):
    store = open_store(str(tmp_path))
    with pytest.raises(CrossingError, match=r"tables \['impressions'\] are missing"):
        write_crossing(store, "nightly", {k: v for k, v in tables().items() if k != "impressions"},
                       interval=("a", "b"), source="s", snapshot_times=[AT], key_id="k")


def test_no_manifest_no_crossing(tmp_path):
    store = open_store(str(tmp_path))
    with pytest.raises(CrossingError, match="no crossing manifest .* has not handed this batch over"):
        read_crossing(store, crossing_prefix("hourly"))


def test_a_table_rewritten_after_its_manifest_is_refused(tmp_path):
    store = open_store(str(tmp_path))
    crossing = write(store)
    key = crossing.tables["interactions"]["key"]
    store.put_bytes(key, store.get_bytes(crossing.tables["catalogue"]["key"]))  # a later, torn write
    with pytest.raises(CrossingError, match="does not match its manifest"):
        read_table(store, crossing, "interactions")
    manifest = json.loads(store.get_bytes(crossing.manifest_key))
    assert manifest["tables"]["interactions"]["rows"] == 3


def test_each_write_is_its_own_batch_and_old_ones_are_dropped(tmp_path):
    from shoprank.features.crossing import batch_name, crossings, drop_old_crossings, latest_crossing

    store = open_store(str(tmp_path))
    names = [batch_name("nightly", "2024-01-01", "2024-01-08", f"2024010{n}T000000") for n in range(1, 6)]
    for name in names:
        write_crossing(store, name, tables(), interval=("2024-01-01", "2024-01-08"), source="s",
                       snapshot_times=[AT], key_id="k")
    store.put_bytes("features/crossing/nightly/20240103T000001-torn/interactions.parquet", b"half")
    assert latest_crossing(store, "nightly") == f"features/crossing/{names[-1]}/manifest.json"
    drop_old_crossings(store, "nightly", keep=2)
    assert crossings(store, "nightly") == [f"features/crossing/{n}/manifest.json" for n in names[-2:]]
    assert not store.list("features/crossing/nightly/20240103T000001-torn/")  # a write that died halfway


def test_a_table_in_parts_is_one_table_and_a_raw_part_halfway_writes_nothing(tmp_path):
    """The private stage hands the interactions over a day at a time: the parts make one table; a
    part with a raw column, after good ones were already written to scratch, still leaves nothing."""
    store = open_store(str(tmp_path))
    whole = tables()["interactions"]
    parts = [whole.iloc[:2], whole.iloc[:0], whole.iloc[2:]]
    crossing = write(store, interactions=iter(parts))
    assert crossing.tables["interactions"]["rows"] == len(whole)
    pd.testing.assert_frame_equal(read_table(store, crossing, "interactions"), whole)
    leaking = (p for p in [whole.iloc[:2], whole.iloc[2:].assign(user_id="raw")])
    other = open_store(str(tmp_path / "other"))
    with pytest.raises(CrossingError, match=r"extra \['user_id'\]"):
        write(other, interactions=leaking)
    assert other.list("features/") == []


def test_a_table_whose_every_part_is_empty_is_written_empty(tmp_path):
    store = open_store(str(tmp_path))
    crossing = write(store, queries=iter([tables()["queries"].iloc[:0]]))
    assert crossing.tables["queries"]["rows"] == 0 and read_table(store, crossing, "queries").empty
