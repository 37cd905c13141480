"""User-kNN candidates: what similar shoppers bought, never the user's own items, never the future."""

import pandas as pd
import pytest

from shoprank.features.compute import user_snapshot
from shoprank.features.neighbours import knn_candidates

T = pd.Timestamp("2024-02-01", tz="UTC")


def _buys(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_key", "item_id", "event_time"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["event_type"], frame["price"], frame["quantity"] = "purchase", 1.0, 1
    return frame


SHOP = [
    # u1 and u2 share a basket of staples; u2 also buys "tea". u3 shares only "milk" with u1 and buys "beer".
    ("u1", "bread", "2024-01-20"), ("u1", "milk", "2024-01-20"), ("u1", "eggs", "2024-01-27"),
    ("u2", "bread", "2024-01-21"), ("u2", "milk", "2024-01-21"), ("u2", "eggs", "2024-01-28"),
    ("u2", "tea", "2024-01-28"),
    ("u3", "milk", "2024-01-05"), ("u3", "beer", "2024-01-05"), ("u3", "chips", "2024-01-05"),
    ("u1", "cake", "2024-02-01"), ("u4", "cake", "2024-02-01"),  # at T: label period, not features
]


def test_items_of_the_most_similar_shopper_come_first_and_own_items_never():
    lists = knn_candidates(_buys(SHOP)[lambda f: f["event_time"] < T], pd.Index(["u1", "u3"]), T)
    u1 = lists.loc["u1"]
    assert u1["user_knn_items"][0] == "tea"  # u2 buys what u1 buys, and tea
    assert set(u1["user_knn_items"]) == {"tea", "beer", "chips"}
    assert not set(u1["user_knn_items"]) & {"bread", "milk", "eggs"}
    assert u1["user_knn_scores"] == sorted(u1["user_knn_scores"], reverse=True)
    assert all(s > 0 for s in u1["user_knn_scores"])
    assert set(lists.loc["u3", "user_knn_items"]) == {"bread", "eggs", "tea"}


def test_lists_are_cut_at_top_and_unknown_users_have_none():
    lists = knn_candidates(_buys(SHOP)[lambda f: f["event_time"] < T], pd.Index(["u1", "ghost"]), T, top=1)
    assert lists.loc["u1", "user_knn_items"] == ["tea"] and "ghost" not in lists.index
    assert knn_candidates(_buys([]), pd.Index(["u1"]), T).empty


def test_recent_purchases_weigh_more():
    # u5 bought "old" from u6 long ago and "new" from u7 last week: u7's other item scores higher
    rows = [("u5", "old", "2023-11-01"), ("u5", "new", "2024-01-28"),
            ("u6", "old", "2023-11-01"), ("u6", "x6", "2023-11-01"),
            ("u7", "new", "2024-01-28"), ("u7", "x7", "2024-01-28")]
    lists = knn_candidates(_buys(rows), pd.Index(["u5"]), T)
    assert lists.loc["u5", "user_knn_items"] == ["x7", "x6"]


def test_the_snapshot_carries_the_lists_from_the_past_only():
    items = pd.DataFrame({"item_id": sorted({r[1] for r in SHOP}), "category": "c", "brand": None, "price": 1.0,
                          "title": None})
    users = user_snapshot(_buys(SHOP), items, T).set_index("user_key")
    assert "u4" not in users.index  # only bought at T
    assert users.loc["u1", "user_knn_items"][0] == "tea"
    assert "cake" not in {i for v in users["user_knn_items"] for i in v}
    assert users.loc["u1", "user_knn_scores"][0] == pytest.approx(max(users.loc["u1", "user_knn_scores"]))


def test_the_memory_block_changes_nothing_in_the_lists(monkeypatch):
    """Many shoppers shrink the dense block (features/neighbours.BLOCK_CELLS); the lists stay the same."""
    import numpy as np

    import shoprank.features.neighbours as neighbours

    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", f"2024-01-{d:02d}") for u in range(300)
            for i, d in zip(rng.integers(0, 60, 8), rng.integers(1, 31, 8), strict=True)]
    buys, users = _buys(rows), pd.Index([f"u{u}" for u in range(300)])
    whole = knn_candidates(buys, users, T)
    monkeypatch.setattr(neighbours, "BLOCK_CELLS", 300 * 17)  # blocks of 17 users
    pd.testing.assert_frame_equal(knn_candidates(buys, users, T), whole)


def test_ties_at_the_cut_go_to_the_lower_codes_every_time():
    import numpy as np

    from shoprank.features.neighbours import _best

    cols = np.array([9, 4, 7, 1, 3, 8])
    vals = np.array([0.5, 0.9, 0.5, 0.5, 0.2, 0.5])
    for _ in range(5):
        picked, scores = _best(cols, vals, 3)
        assert sorted(picked.tolist()) == [1, 4, 7] and sorted(scores.tolist()) == [0.5, 0.5, 0.9]
    assert sorted(_best(cols, vals, 10)[0].tolist()) == sorted(cols.tolist())
