"""The training set draws its users before it reads their rows, so the step holds only theirs."""

import pandas as pd

from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.snapshots import snapshot_times
from shoprank.features.training_set import TrainingSetConfig, build_examples, label_cutoffs, sample_users
from shoprank.orchestration.steps import SNAPSHOT_FILES, read_user_snapshots
from tests.features.test_snapshots import ITEMS, _interactions


def test_examples_from_the_drawn_users_rows_alone_equal_those_from_every_row(tmp_path):
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    interactions = _interactions()
    users, items = feature_snapshots(interactions, ITEMS, times)
    cutoffs = label_cutoffs(times, 7, times[-1])
    config = TrainingSetConfig(n_popular=2, max_users_per_cutoff=1)  # fewer than the buyers: a real draw
    expected = build_examples(interactions, users, items, cutoffs, config)

    users.to_parquet(tmp_path / SNAPSHOT_FILES["user_stats"], index=False)
    keys = read_user_snapshots(tmp_path, "training_set", [], times=cutoffs)
    assert list(keys.columns) == ["user_key", "event_timestamp"]
    known = {at: set(keys.loc[keys["event_timestamp"] == at, "user_key"]) for at in cutoffs}
    sampled = sample_users(interactions, known, cutoffs, config)
    assert all(len(v) <= 1 for v in sampled.values()) and any(sampled.values())
    drawn = sorted(set().union(*sampled.values()))
    rows = read_user_snapshots(tmp_path, "training_set", ["user_top_items"], times=cutoffs, users=drawn)
    assert set(rows["user_key"]) == set(drawn) and len(rows) < len(users)

    got = build_examples(interactions, rows, items, cutoffs, config, sampled=sampled)
    pd.testing.assert_frame_equal(got, expected)


def test_no_drawn_user_reads_no_row(tmp_path):
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, _ = feature_snapshots(_interactions(), ITEMS, times)
    users.to_parquet(tmp_path / SNAPSHOT_FILES["user_stats"], index=False)
    none = read_user_snapshots(tmp_path, "training_set", ["user_top_items"], users=[])
    assert none.empty and list(none.columns) == ["user_key", "event_timestamp", "user_top_items"]
