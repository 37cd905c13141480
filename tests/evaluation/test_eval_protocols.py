"""Protocol correctness: no leaks, the test-user rule, leave-last-out targets and histories."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprank.evaluation.protocols import (
    interaction_sequences,
    leave_last_out_split,
    make_split,
    temporal_split,
)

T = "2001-02-01"


@pytest.fixture
def shop(events_factory) -> pd.DataFrame:
    return events_factory([
        ("2001-01-10", "both", "a"),
        ("2001-01-20", "both", "b"),
        ("2001-02-03", "both", "b"),
        ("2001-02-03", "both", "c"),
        ("2001-02-10", "both", "c"),  # a repeat in the test period: truth stays distinct
        ("2001-01-05", "past_only", "a"),
        ("2001-02-05", "new_only", "d"),
        ("2001-03-05", "both", "late"),  # after test_end when one is given
        ("2001-01-31", "edge", "a"),
        ("2001-02-01", "edge", "e"),  # exactly at the cut-off: test period
    ])


def test_temporal_train_has_nothing_from_the_test_period(shop: pd.DataFrame) -> None:
    split = temporal_split(shop, T)
    assert (split.train["event_time"] < pd.Timestamp(T, tz="UTC")).all()
    assert len(split.train) == 4
    assert not split.exclude_seen and split.exclude is None


def test_temporal_test_users_rule_and_distinct_truth(shop: pd.DataFrame) -> None:
    split = temporal_split(shop, T)
    assert split.test_users == ["both", "edge"]  # past_only: nothing after; new_only: nothing before
    assert split.truth == {"both": ["b", "c", "late"], "edge": ["e"]}
    assert split.n_items == 6


def test_temporal_test_end_cuts_the_period(shop: pd.DataFrame) -> None:
    split = temporal_split(shop, T, test_end="2001-03-01")
    assert split.truth["both"] == ["b", "c"]
    assert split.test_end == pd.Timestamp("2001-03-01", tz="UTC")


def test_temporal_validation_is_the_same_length_period_before_the_cutoff(shop: pd.DataFrame) -> None:
    split = temporal_split(shop, T, test_end="2001-02-15")
    val = split.validation
    assert val is not None and val.validation is None
    assert val.cutoff == pd.Timestamp("2001-01-18", tz="UTC") and val.test_end == split.cutoff
    assert val.test_users == ["both"] and val.truth == {"both": ["b"]}
    assert (val.train["event_time"] < val.cutoff).all()
    # default test period = to the data's last day, inclusive: 2001-02-01 .. 2001-03-05 = 33 days
    assert temporal_split(shop, T).validation.cutoff == pd.Timestamp(T, tz="UTC") - pd.Timedelta(days=33)


def test_temporal_other_event_types_only_where_asked(shop: pd.DataFrame, events_factory) -> None:
    views = events_factory([("2001-01-02", "viewer", "z"), ("2001-02-02", "viewer", "z")], event_type="view")
    events = pd.concat([shop, views], ignore_index=True)
    purchases_only = temporal_split(events, T)
    assert "viewer" not in purchases_only.test_users and "z" not in set(purchases_only.train["item_id"])
    with_views = temporal_split(events, T, train_event_types=("purchase", "view"))
    assert "viewer" not in with_views.test_users  # the truth is still purchases
    assert set(with_views.train["event_type"]) == {"purchase", "view"}


@pytest.fixture
def sequences(events_factory) -> pd.DataFrame:
    return events_factory([
        ("2001-01-01", "u", "a"),
        ("2001-01-01", "u", "b"),
        ("2001-01-02", "u", "a"),  # repeat: not a new interaction
        ("2001-01-02", "u", "c"),
        ("2001-01-03", "u", "d"),  # last new item: the target
        ("2001-01-04", "u", "b"),  # a later repeat: must not reach training
        ("2001-01-01", "short", "a"),
        ("2001-01-05", "short", "b"),
    ])


def test_leave_last_out_target_validation_and_history(sequences: pd.DataFrame) -> None:
    split = leave_last_out_split(sequences)
    assert split.test_users == ["u"]  # "short" has 2 distinct items only
    assert split.truth == {"u": ["d"]}
    assert split.exclude == {"u": {"a", "b", "c"}} and split.exclude_seen
    train_u = split.train[split.train["user_id"] == "u"]
    assert "d" not in set(train_u["item_id"])
    assert (train_u["event_time"] <= pd.Timestamp("2001-01-03", tz="UTC")).all()
    assert len(train_u) == 4
    assert len(split.train[split.train["user_id"] == "short"]) == 2  # kept whole

    val = split.validation
    assert val is not None
    assert val.truth == {"u": ["c"]} and val.exclude == {"u": {"a", "b"}}
    val_u = val.train[val.train["user_id"] == "u"]
    assert set(val_u["item_id"]) == {"a", "b"} and len(val_u) == 3
    assert not {"c", "d"} & set(val_u["item_id"])


def test_leave_last_out_target_never_in_its_history_on_random_data(events_factory) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    rows = [(f"2001-01-{rng.integers(1, 29):02d}", f"u{rng.integers(0, 40)}", f"i{rng.integers(0, 30)}")
            for _ in range(800)]
    events = events_factory(rows).drop_duplicates(["user_id", "item_id", "event_time"])
    split = leave_last_out_split(events)
    seq = interaction_sequences(events)
    for user in split.test_users:
        target = split.truth[user][0]
        assert target not in split.exclude[user]
        user_seq = seq[seq["user_id"] == user]
        assert user_seq["item_id"].iloc[-1] == target
        assert set(user_seq["item_id"].iloc[:-1]) == split.exclude[user]
        target_time = user_seq["first_time"].iloc[-1]
        train_u = split.train[split.train["user_id"] == user]
        assert target not in set(train_u["item_id"])
        assert (train_u["event_time"] <= target_time).all()
        assert (user_seq["first_time"] <= target_time).all()


def test_same_time_ties_do_not_depend_on_row_order(sequences: pd.DataFrame) -> None:
    a = interaction_sequences(sequences)
    b = interaction_sequences(sequences.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(a, b)
    assert leave_last_out_split(sequences.iloc[::-1]).truth == leave_last_out_split(sequences).truth


def test_make_split_selects_by_name(sequences: pd.DataFrame) -> None:
    assert make_split("leave_last_out", sequences).name == "leave_last_out"
    assert make_split("temporal", sequences, cutoff="2001-01-03").name == "temporal"
    with pytest.raises(ValueError):
        make_split("random", sequences)
