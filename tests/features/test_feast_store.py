"""Feast: apply, materialise into the SQLite online store, point-in-time joins offline."""

import pandas as pd
import pytest

from shoprank.features import store as feast_store
from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.engine.schema import conform, feast_schema
from shoprank.features.snapshots import snapshot_times
from shoprank.features.training_set import TrainingSetConfig, build_examples, label_cutoffs, with_features
from shoprank.layout import ITEM_STATS_KEY, USER_STATS_KEY
from shoprank.settings import load_settings
from tests.features.test_snapshots import ITEMS, _interactions


@pytest.fixture
def applied(home):
    settings = load_settings()
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    feast_store.apply_and_materialise(settings, times[-1])
    return settings, times


def test_online_store_serves_the_newest_snapshot(applied):
    settings, _ = applied
    online = feast_store.online_features(settings, "u1", ["a", "z", "unknown"]).set_index("item_id")
    assert "z" in online.loc["a", "user_top_items"]  # the 2024-02-08 snapshot
    assert online.loc["a", "item_category"] == "x"
    assert online.loc["z", "item_pop_7d"] == 1
    assert pd.isna(online.loc["unknown", "item_price"])  # not in the catalogue: no features, no error


def test_historical_join_is_point_in_time(applied):
    settings, times = applied
    entity = pd.DataFrame({"user_key": ["u1", "u1"], "item_id": ["z", "z"],
                           "event_timestamp": [times[1], times[2]]})
    joined = feast_store.historical_features(settings, entity).sort_values("event_timestamp")
    at_t, week_later = joined.iloc[0], joined.iloc[1]
    assert "z" not in list(at_t["user_top_items"]) and at_t["item_pop_30d"] == 0
    assert "z" in list(week_later["user_top_items"]) and week_later["item_pop_30d"] == 1


def test_training_examples_label_the_future(applied):
    settings, times = applied
    interactions = _interactions()
    users = feast_store.read_offline_table(settings, USER_STATS_KEY)
    items = feast_store.read_offline_table(settings, ITEM_STATS_KEY)
    cutoffs = label_cutoffs(times, 7, times[-1])
    assert cutoffs == times[:2]
    examples = build_examples(interactions, users, items, cutoffs, TrainingSetConfig(n_popular=2))
    at_t = examples[examples["event_timestamp"] == times[1]].set_index(["user_key", "item_id"])["label"]
    # Candidates: each user's own items, then the 2 most popular before T (b, then a by 30-day count).
    # u2 bought a in [T, T+7d) -> positive; u1 bought z, which was no candidate (unseen, unpopular).
    # u3 has no history before T: cold start, left to the popularity fallback, not a training row.
    assert at_t.to_dict() == {("u1", "a"): 0, ("u1", "b"): 0, ("u1", "c"): 0, ("u2", "b"): 0, ("u2", "a"): 1}
    joined = feast_store.historical_features(settings, examples[["user_key", "item_id", "event_timestamp"]])
    full = with_features(examples, joined, 7)
    row = full[(full["event_timestamp"] == times[1]) & (full["item_id"] == "a")].iloc[0]
    assert row["ui_in_history"] == 1.0 and row["ui_rank_recip"] == 1.0 and row["ui_score"] == 2.0
    assert list(examples["split"].unique()) == ["validation", "test"]


def test_user_snapshots_written_one_at_a_time_equal_the_stacked_table(home, tmp_path):
    """The nightly streams each snapshot to parquet as it is computed: the same rows as stacking them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = load_settings()
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    interactions = _interactions()
    stacked, items = feature_snapshots(interactions, ITEMS, times)
    parts = (feature_snapshots(interactions, ITEMS, [t])[0] for t in times)
    rows = feast_store.write_offline_sources(settings, parts, items, users_file=tmp_path / "user_stats.parquet")
    assert rows == len(stacked) > 0
    written = pq.read_table(tmp_path / "user_stats.parquet")
    assert written.schema.equals(feast_schema("user_stats"))  # the Feast view's types, whatever the parts'
    assert written.equals(conform(pa.Table.from_pandas(stacked, preserve_index=False), "user_stats", "stacked"))
    assert feast_store.read_offline_table(settings, USER_STATS_KEY).shape == stacked.shape


def test_materialising_in_batches_smaller_than_the_snapshot_loses_no_row(home, monkeypatch):
    """Materialisation writes the online store a batch at a time: every user and item still arrives."""
    monkeypatch.setattr(feast_store, "ONLINE_WRITE_BATCH", 1)
    settings = load_settings()
    assert feast_store.repo_config(settings).materialization_config.online_write_batch_size == 1
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    feast_store.apply_and_materialise(settings, times[-1])
    newest = users[users["event_timestamp"] == times[-1]].set_index("user_key")
    assert len(newest) >= 2 and len(ITEMS) >= 4  # more rows than one batch on both views
    for user_key, row in newest.iterrows():
        online = feast_store.online_features(settings, user_key, list(ITEMS["item_id"])).set_index("item_id")
        assert list(online.loc["a", "user_top_items"]) == list(row["user_top_items"])
        assert online["item_category"].tolist() == ITEMS["category"].tolist()
