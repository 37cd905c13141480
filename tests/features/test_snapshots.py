"""Feature snapshots (the SQL feature job over frames) only see the past: the basis of point-in-time
correct training sets."""

import pandas as pd
import pytest

from shoprank.features.definitions import USER_LIST_FEATURES
from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.snapshots import snapshot_times

T = pd.Timestamp("2024-02-01", tz="UTC")


def _interactions() -> pd.DataFrame:
    rows = [
        ("u1", "a", "purchase", "2024-01-10"), ("u1", "a", "purchase", "2024-01-20"),
        ("u1", "b", "purchase", "2024-01-25"),
        ("u1", "c", "view", "2024-01-26"), ("u2", "b", "purchase", "2024-01-31"),
        ("u1", "z", "purchase", "2024-02-01"),  # at T: belongs to the label period, never to features
        ("u2", "a", "purchase", "2024-02-02"), ("u3", "a", "purchase", "2024-02-03"),
    ]
    frame = pd.DataFrame(rows, columns=["user_key", "item_id", "event_type", "event_time"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["price"], frame["quantity"] = 2.0, 1
    return frame


def user_snapshot(interactions: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    users = feature_snapshots(interactions, items, [at])[0]
    return users.assign(**{c: users[c].map(list) for c in USER_LIST_FEATURES})


def item_snapshot(interactions: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    return feature_snapshots(interactions, items, [at])[1]


ITEMS = pd.DataFrame({"item_id": ["a", "b", "c", "z"], "category": ["x", "y", "x", "w"], "brand": None,
                      "price": [1.0, 2.0, 3.0, 4.0], "title": None})


def test_user_snapshot_sees_only_events_before_the_snapshot():
    users = user_snapshot(_interactions(), ITEMS, T).set_index("user_key")
    assert set(users.index) == {"u1", "u2"}  # u3 only appears after T
    u1 = users.loc["u1"]
    assert "z" not in u1["user_top_items"]
    assert u1["user_top_items"][:2] == ["a", "b"]  # a bought twice ranks first
    assert u1["user_n_purchases"] == 3 and u1["user_n_items"] == 2 and u1["user_n_interactions"] == 4
    assert u1["user_top_categories"][0] == "x"
    assert users.loc["u2", "user_days_since_last"] == 1.0


def test_item_snapshot_popularity_windows():
    items = item_snapshot(_interactions(), ITEMS, T).set_index("item_id")
    assert items.loc["a", "item_pop_30d"] == 2 and items.loc["a", "item_pop_7d"] == 0
    assert items.loc["b", "item_pop_7d"] == 2 and items.loc["b", "item_buyers_30d"] == 2
    assert items.loc["z", "item_pop_30d"] == 0  # bought at T: not yet known
    assert items.loc["a", "item_repeat_rate"] == 1.0 and items.loc["b", "item_repeat_rate"] == 0.0


def test_snapshots_stack_over_times():
    times = snapshot_times(pd.Timestamp("2024-02-08 13:00", tz="UTC"), 3)
    assert times == [pd.Timestamp(d, tz="UTC") for d in ("2024-01-25", "2024-02-01", "2024-02-08")]
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    assert sorted(users["event_timestamp"].unique()) == times
    later = users[(users["event_timestamp"] == times[-1]) & (users["user_key"] == "u1")].iloc[0]
    assert "z" in later["user_top_items"]  # a week later, the purchase at T is history
    assert len(items) == 3 * len(ITEMS)


def test_snapshots_carry_scale_free_volumes():
    items = item_snapshot(_interactions(), ITEMS, T).set_index("item_id")
    # the 7 days before T hold 2 purchases, both of b; the 30 days 2 distinct buyers (b: both, a: u1)
    assert items.loc["b", "item_pop_7d_per_100k"] == pytest.approx(1e5) and items.loc["a", "item_pop_7d_per_100k"] == 0
    assert items.loc["b", "item_buyers_30d_per_10k"] == 1e4 and items.loc["a", "item_buyers_30d_per_10k"] == 5e3
    users = user_snapshot(_interactions(), ITEMS, T).set_index("user_key")
    assert users.loc["u1", "user_history_days"] == 22.0  # first event 2024-01-10


def test_popular_candidates_are_the_30_day_distinct_buyers_top():
    from shoprank.features.training_set import popular_at

    items = item_snapshot(_interactions(), ITEMS, T)
    assert popular_at(items, T, 2) == ["b", "a"]  # b: 2 buyers; a: 1 buyer (twice), though a has more events


def test_repeat_percentile_orders_items_bought_and_ignores_the_rest():
    items = item_snapshot(_interactions(), ITEMS, T).set_index("item_id")
    # a (bought twice by u1) repeats more than b (two buyers, once each); c and z were not bought
    assert items.loc["a", "item_repeat_pct"] == 1.0 and items.loc["b", "item_repeat_pct"] == 0.5
    assert items.loc["c", "item_repeat_pct"] == 0.0 and items.loc["z", "item_repeat_pct"] == 0.0


def test_repeat_percentile_is_the_same_whatever_the_history_length():
    """Longer history inflates the raw repeat rate; the percentile keeps only the order."""
    events = _interactions()
    older = events[(events["item_id"] == "b") & (events["user_key"] == "u2")].copy()
    older["event_time"] -= pd.Timedelta(days=60)  # u2 had bought b before: b's raw rate rises, a still leads
    long = item_snapshot(pd.concat([older, events]), ITEMS, T).set_index("item_id")
    short = item_snapshot(events, ITEMS, T).set_index("item_id")
    assert long.loc["b", "item_repeat_rate"] > short.loc["b", "item_repeat_rate"]
    assert (long["item_repeat_pct"] == short["item_repeat_pct"]).all()
