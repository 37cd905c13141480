"""User-kNN candidates of the feature job: what similar shoppers bought, never the user's own items,
never the future."""

import pandas as pd
import pytest

from shoprank.features.engine.frames import feature_snapshots

T = pd.Timestamp("2024-02-01", tz="UTC")


def _buys(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_key", "item_id", "event_time"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["event_type"], frame["price"], frame["quantity"] = "purchase", 1.0, 1
    return frame


def knn_candidates(buys: pd.DataFrame, users: pd.Index, at: pd.Timestamp, knn_cap: int | None = None) -> pd.DataFrame:
    """The job's exact kNN lists of `users` (those with any)."""
    items = pd.DataFrame({"item_id": sorted(set(buys["item_id"])) or ["none"], "category": "c", "price": 1.0})
    rows = feature_snapshots(buys, items, [at], knn_cap=knn_cap)[0].set_index("user_key")
    rows = rows[[len(v) > 0 for v in rows["user_knn_items"]]]
    return rows.loc[rows.index.intersection(users), ["user_knn_items", "user_knn_scores"]].map(list)


def user_snapshot(interactions: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    return feature_snapshots(interactions, items, [at])[0]


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


def test_unknown_users_have_no_list():
    lists = knn_candidates(_buys(SHOP)[lambda f: f["event_time"] < T], pd.Index(["u1", "ghost"]), T)
    assert "ghost" not in lists.index and "u1" in lists.index
    assert knn_candidates(_buys(SHOP[:1]), pd.Index(["u1"]), T).empty  # no other shopper: no neighbour


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


def test_equal_scores_are_ordered_by_item_id():
    # u8's only neighbour u9 bought two items the same day: equal scores, listed by id
    rows = [("u8", "a", "2024-01-20"), ("u9", "a", "2024-01-20"), ("u9", "zz", "2024-01-20"),
            ("u9", "bb", "2024-01-20")]
    lists = knn_candidates(_buys(rows), pd.Index(["u8"]), T)
    assert lists.loc["u8", "user_knn_items"] == ["bb", "zz"]
    assert lists.loc["u8", "user_knn_scores"][0] == pytest.approx(lists.loc["u8", "user_knn_scores"][1])


def test_the_capped_knn_keeps_the_heaviest_buyers_of_a_popular_item():
    # 30 shoppers bought "staple"; with a cap of 5 buyers per item u1 still finds neighbours through it
    rows = [(f"s{n:02d}", "staple", "2024-01-20") for n in range(30)] + [(f"s{n:02d}", f"x{n}", "2024-01-20")
                                                                        for n in range(30)]
    rows += [("u1", "staple", "2024-01-25")]
    capped = knn_candidates(_buys(rows), pd.Index(["u1"]), T, knn_cap=5)
    exact = knn_candidates(_buys(rows), pd.Index(["u1"]), T)
    assert len(exact.loc["u1", "user_knn_items"]) == 30
    assert 0 < len(capped.loc["u1", "user_knn_items"]) <= 5
