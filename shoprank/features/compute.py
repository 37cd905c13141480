"""User and item features as of a series of snapshot times, from pseudonymised interactions.

Each snapshot at time T only looks at events strictly before T, and Feast joins training examples
to the latest snapshot at or before the example's time: together that makes the training set
point-in-time correct (no feature ever sees its own label period).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# How much each kind of interaction says about wanting an item (purchase is the target).
INTERACTION_WEIGHT = {"purchase": 1.0, "cart": 0.5, "view": 0.1}
TOP_ITEMS = 50
TOP_CATEGORIES = 5
LOOKBACK = pd.Timedelta(days=120)

USER_FEATURES = [
    "user_n_purchases", "user_n_baskets", "user_n_items", "user_days_since_last", "user_avg_price",
    "user_n_interactions", "user_top_items", "user_top_item_scores", "user_top_item_days",
    "user_top_categories",
]
ITEM_FEATURES = [
    "item_category", "item_price", "item_pop_7d", "item_pop_30d", "item_buyers_30d", "item_repeat_rate",
    "item_interactions_7d",
]


def snapshot_times(end: pd.Timestamp, n_snapshots: int, step_days: int = 7) -> list[pd.Timestamp]:
    """Snapshot times ending at `end` (midnight), oldest first."""
    end = end.normalize()
    return [end - pd.Timedelta(days=step_days * k) for k in reversed(range(n_snapshots))]


def _window(interactions: pd.DataFrame, at: pd.Timestamp, span: pd.Timedelta) -> pd.DataFrame:
    times = interactions["event_time"]
    return interactions[(times < at) & (times >= at - span)]


def user_snapshot(interactions: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """One row per user with any interaction in the lookback window before `at`."""
    past = _window(interactions, at, LOOKBACK).copy()
    if past.empty:
        return pd.DataFrame(columns=["user_key", "event_timestamp", *USER_FEATURES])
    past["weight"] = past["event_type"].map(INTERACTION_WEIGHT).fillna(0.0) * past["quantity"].fillna(1).clip(1, 10)
    past["day"] = past["event_time"].dt.floor("D")
    buys = past[past["event_type"] == "purchase"]
    per_user = past.groupby("user_key").agg(user_n_interactions=("item_id", "size"), last=("event_time", "max"))
    bought = buys.groupby("user_key").agg(
        user_n_purchases=("item_id", "size"), user_n_baskets=("day", "nunique"),
        user_n_items=("item_id", "nunique"), user_avg_price=("price", "mean"),
    )
    users = per_user.join(bought, how="left")
    users["user_days_since_last"] = (at - users.pop("last")).dt.total_seconds() / 86400.0
    pairs = past.groupby(["user_key", "item_id"], sort=False).agg(score=("weight", "sum"),
                                                                    last=("event_time", "max"))
    pairs = pairs.reset_index().sort_values(["user_key", "score", "last"], ascending=[True, False, False])
    pairs = pairs.groupby("user_key", sort=False).head(TOP_ITEMS)
    pairs["days"] = (at - pairs["last"]).dt.total_seconds() / 86400.0
    tops = pairs.groupby("user_key", sort=False).agg(
        user_top_items=("item_id", list), user_top_item_scores=("score", list), user_top_item_days=("days", list)
    )
    cats = past[["user_key", "item_id", "weight"]].merge(items[["item_id", "category"]], on="item_id", how="left")
    cats = cats.groupby(["user_key", "category"], sort=False)["weight"].sum().reset_index()
    cats = cats.sort_values(["user_key", "weight"], ascending=[True, False]).groupby("user_key").head(TOP_CATEGORIES)
    top_cats = cats.groupby("user_key", sort=False)["category"].agg(list).rename("user_top_categories")
    users = users.join(tops).join(top_cats)
    for col in ("user_n_purchases", "user_n_baskets", "user_n_items"):
        users[col] = users[col].fillna(0).astype("int64")
    users["user_avg_price"] = users["user_avg_price"].fillna(0.0).astype("float64")
    users["user_n_interactions"] = users["user_n_interactions"].astype("int64")
    users["user_top_categories"] = users["user_top_categories"].map(lambda v: v if isinstance(v, list) else [])
    users["event_timestamp"] = at
    return users.reset_index()[["user_key", "event_timestamp", *USER_FEATURES]]


def item_snapshot(interactions: pd.DataFrame, items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """One row per catalogue item: popularity windows and repurchase tendency before `at`."""
    past = _window(interactions, at, LOOKBACK)
    buys = past[past["event_type"] == "purchase"]
    recent7 = buys[buys["event_time"] >= at - pd.Timedelta(days=7)]
    recent30 = buys[buys["event_time"] >= at - pd.Timedelta(days=30)]
    per_pair = buys.groupby(["item_id", "user_key"]).size()
    repeat = (per_pair > 1).groupby(level=0).mean()
    out = pd.DataFrame({"item_id": items["item_id"].to_numpy()}).set_index("item_id")
    out["item_category"] = items.set_index("item_id")["category"].astype(str)
    out["item_price"] = items.set_index("item_id")["price"].astype("float64").fillna(0.0)
    out["item_pop_7d"] = recent7.groupby("item_id").size()
    out["item_pop_30d"] = recent30.groupby("item_id").size()
    out["item_buyers_30d"] = recent30.groupby("item_id")["user_key"].nunique()
    out["item_repeat_rate"] = repeat
    out["item_interactions_7d"] = past[past["event_time"] >= at - pd.Timedelta(days=7)].groupby("item_id").size()
    for col in ("item_pop_7d", "item_pop_30d", "item_buyers_30d", "item_interactions_7d"):
        out[col] = out[col].fillna(0).astype("int64")
    out["item_repeat_rate"] = out["item_repeat_rate"].fillna(0.0).astype("float64")
    out["event_timestamp"] = at
    return out.reset_index()[["item_id", "event_timestamp", *ITEM_FEATURES]]


def feature_snapshots(
    interactions: pd.DataFrame, items: pd.DataFrame, times: Sequence[pd.Timestamp]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item feature tables stacked over all snapshot times."""
    users = pd.concat([user_snapshot(interactions, items, t) for t in times], ignore_index=True)
    item_rows = pd.concat([item_snapshot(interactions, items, t) for t in times], ignore_index=True)
    return users, item_rows


__all__ = ["feature_snapshots", "snapshot_times", "USER_FEATURES", "ITEM_FEATURES", "np"]
