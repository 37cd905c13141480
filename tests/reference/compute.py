"""The feature definitions in pandas: the reference the SQL feature job (`shoprank/features/engine/`)
is held equal to in the tests, never on the production path. User and item features as of a series
of snapshot times, from pseudonymised interactions.

Each snapshot at time T only looks at events strictly before T, and Feast joins training examples
to the latest snapshot at or before the example's time: together that makes the training set
point-in-time correct (no feature ever sees its own label period).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shoprank.features.recommenders import ItemCooccurrence
from shoprank.features.snapshots import (
    DECAY_HALF_LIFE_DAYS,
    INTERACTION_WEIGHT,
    ITEM_FEATURES,
    LOOKBACK,
    SEQUENCE_ITEMS,
    TOP_CATEGORIES,
    TOP_ITEMS,
    USER_FEATURES,
    snapshot_times,
)
from shoprank.models.sequence_input import item_sequences
from tests.reference.neighbours import knn_candidates

TOP_COOC = 50  # co-occurrence items per user ("bought together" with the user's history)
COOC_NEIGHBOURS = 200


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
    per_user = past.groupby("user_key").agg(user_n_interactions=("item_id", "size"), last=("event_time", "max"),
                                            first=("event_time", "min"))
    bought = buys.groupby("user_key").agg(
        user_n_purchases=("item_id", "size"), user_n_baskets=("day", "nunique"),
        user_n_items=("item_id", "nunique"), user_avg_price=("price", "mean"),
    )
    users = per_user.join(bought, how="left")
    users["user_days_since_last"] = (at - users.pop("last")).dt.total_seconds() / 86400.0
    # how long the user has been observed (within the lookback): turns counts into rates, which do not
    # grow with the length of the data before the snapshot as raw counts do
    users["user_history_days"] = (at - users.pop("first")).dt.total_seconds() / 86400.0
    past["is_buy"] = (past["event_type"] == "purchase").astype("int64")
    age_days = (at - past["event_time"]).dt.total_seconds() / 86400.0
    past["decayed"] = past["is_buy"] * np.power(0.5, age_days / DECAY_HALF_LIFE_DAYS)
    pairs = past.groupby(["user_key", "item_id"], sort=False).agg(score=("weight", "sum"),
                                                                    count=("is_buy", "sum"),
                                                                    decayed=("decayed", "sum"),
                                                                    first=("event_time", "min"),
                                                                    last=("event_time", "max"))
    # Order = the repurchase baseline's: purchase events, then recency, then interaction weight.
    pairs = pairs.reset_index()
    pairs["rounded"] = pairs["score"].round(9)
    pairs = pairs.sort_values(["user_key", "count", "last", "rounded", "item_id"],
                              ascending=[True, False, False, False, True])
    pairs = pairs.groupby("user_key", sort=False).head(TOP_ITEMS)
    pairs["days"] = (at - pairs["last"]).dt.total_seconds() / 86400.0
    pairs["first_days"] = (at - pairs["first"]).dt.total_seconds() / 86400.0
    tops = pairs.groupby("user_key", sort=False).agg(
        user_top_items=("item_id", list), user_top_item_scores=("score", list), user_top_item_days=("days", list),
        user_top_item_counts=("count", list), user_top_item_decayed=("decayed", list),
        user_top_item_first_days=("first_days", list),
    )
    cats = past[["user_key", "item_id", "weight"]].merge(items[["item_id", "category"]], on="item_id", how="left")
    cats = cats.groupby(["user_key", "category"], sort=False)["weight"].sum().reset_index()
    cats["share"] = cats["weight"] / cats.groupby("user_key")["weight"].transform("sum").clip(lower=1e-9)
    cats["rounded"] = cats["weight"].round(9)
    cats = cats.sort_values(["user_key", "rounded", "category"],
                            ascending=[True, False, True]).groupby("user_key").head(TOP_CATEGORIES)
    top_cats = cats.groupby("user_key", sort=False).agg(user_top_categories=("category", list),
                                                         user_top_category_shares=("share", list))
    recent = buys[buys["event_time"] >= at - pd.Timedelta(days=30)]
    baskets_30d = recent.groupby("user_key")["day"].nunique().rename("user_n_baskets_30d")
    users = users.join(tops).join(top_cats).join(baskets_30d).join(cooccurrence_candidates(buys, users.index))
    users = users.join(knn_candidates(buys, users.index, at))
    users = users.join(item_sequences(buys, "user_key", SEQUENCE_ITEMS).rename("user_item_sequence"))
    users["user_n_baskets_30d"] = users["user_n_baskets_30d"].fillna(0).astype("int64")
    # empty lists typed (an all-empty column would be list<null> in parquet, which Feast cannot cast)
    for col, dtype in (("user_top_category_shares", "float64"), ("user_cooc_items", str),
                       ("user_cooc_scores", "float64"), ("user_top_item_decayed", "float64"),
                       ("user_top_item_first_days", "float64"),
                       ("user_knn_items", str), ("user_knn_scores", "float64"), ("user_item_sequence", str)):
        users[col] = users[col].map(lambda v, t=dtype: v if isinstance(v, list) and v else np.array([], dtype=t))
    for col in ("user_n_purchases", "user_n_baskets", "user_n_items"):
        users[col] = users[col].fillna(0).astype("int64")
    users["user_avg_price"] = users["user_avg_price"].fillna(0.0).astype("float64")
    users["user_n_interactions"] = users["user_n_interactions"].astype("int64")
    users["user_top_categories"] = users["user_top_categories"].map(lambda v: v if isinstance(v, list) else [])
    users["event_timestamp"] = at
    return users.reset_index()[["user_key", "event_timestamp", *USER_FEATURES]]


def cooccurrence_candidates(buys: pd.DataFrame, users: pd.Index, top: int = TOP_COOC) -> pd.DataFrame:
    """Per user, the `top` items scored by basket co-occurrence with their history (and the scores).

    The exact `ItemCooccurrence` of the baselines (conditional P(j | i), kNN-pruned, basket = one
    user-day), fitted on the purchases before the snapshot only: point-in-time like every feature.
    """
    empty = pd.DataFrame({"user_cooc_items": pd.Series(dtype=object), "user_cooc_scores": pd.Series(dtype=object)})
    if buys.empty:
        return empty
    frame = pd.DataFrame({"event_time": buys["event_time"].to_numpy(), "user_id": buys["user_key"].to_numpy(),
                          "item_id": buys["item_id"].to_numpy(),
                          "session_id": (buys["user_key"].astype(str) + "|" + buys["day"].astype(str)).to_numpy()})
    model = ItemCooccurrence(neighbours=COOC_NEIGHBOURS, window_days=30).fit(frame)
    known = set(model.user_index_)
    wanted = [u for u in users if u in known]
    items_out, scores_out, keys = [], [], []
    for start in range(0, len(wanted), 4096):
        batch = wanted[start:start + 4096]
        r = model.scores(batch)
        for i, user in enumerate(batch):
            s, e = r.indptr[i], r.indptr[i + 1]
            cols, vals = r.indices[s:e], r.data[s:e]
            order = np.lexsort((cols, -np.round(vals, 9)))[:top]  # ties by popularity (the lower code)
            keys.append(user)
            items_out.append(model.items_[cols[order]].tolist())
            scores_out.append(vals[order].astype("float64").tolist())
    if not keys:
        return empty
    return pd.DataFrame({"user_cooc_items": items_out, "user_cooc_scores": scores_out}, index=pd.Index(keys))


TOP_ITEM_NEIGHBOURS = 20


def item_neighbours(interactions: pd.DataFrame, at: pd.Timestamp, top: int = TOP_ITEM_NEIGHBOURS) -> pd.DataFrame:
    """Per item, the `top` items most often bought in the same basket (P(j | i), best first), from the
    purchases of the 30 days before `at`: what the online path adds as candidates for the items of a
    live session (the same "bought together" as `cooccurrence_candidates`, per item, not per user)."""
    past = _window(interactions, at, pd.Timedelta(days=30))
    buys = past[past["event_type"] == "purchase"]
    empty = pd.DataFrame({"item_id": pd.Series(dtype=str), "neighbours": pd.Series(dtype=object)})
    if buys.empty:
        return empty
    frame = pd.DataFrame({"event_time": buys["event_time"].to_numpy(), "user_id": buys["user_key"].to_numpy(),
                          "item_id": buys["item_id"].to_numpy(),
                          "session_id": (buys["user_key"].astype(str) + "|"
                                         + buys["event_time"].dt.floor("D").astype(str)).to_numpy()})
    sim = ItemCooccurrence(neighbours=top, window_days=None).fit(frame)
    matrix, items = sim.sim_.tocsr(), sim.items_
    rows, lists = [], []
    for row in np.flatnonzero(np.diff(matrix.indptr) > 0):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        cols, vals = matrix.indices[start:end], matrix.data[start:end]
        order = np.lexsort((cols, -vals))
        rows.append(str(items[row]))
        lists.append([str(i) for i in items[cols[order]]])
    return pd.DataFrame({"item_id": rows, "neighbours": lists}) if rows else empty


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
    # Shares of the window's volume: comparable across snapshots whatever the week's traffic (raw
    # counts halve in a holiday week, e.g. the Lunar New Year week before the Ta Feng test period).
    # (scaled so that the model's log1p spreads the long tail: a typical item has a few per 100k)
    out["item_pop_7d_per_100k"] = out["item_pop_7d"] * 1e5 / max(len(recent7), 1)
    out["item_buyers_30d_per_10k"] = out["item_buyers_30d"] * 1e4 / max(recent30["user_key"].nunique(), 1)
    for col in ("item_pop_7d", "item_pop_30d", "item_buyers_30d", "item_interactions_7d"):
        out[col] = out[col].fillna(0).astype("int64")
    for col in ("item_repeat_rate", "item_pop_7d_per_100k", "item_buyers_30d_per_10k"):
        out[col] = out[col].fillna(0.0).astype("float64")
    # The repeat rate grows with the history the window holds (a buyer seen for longer has had more
    # chances to buy again: the Ta Feng mean is 0.042 at 2000-11-30 and 0.083 at 2001-02-01), so a
    # model trained on early snapshots would read later ones off its scale. Its percentile among the
    # items bought at this snapshot keeps the order and drops the drift.
    bought = out.index.isin(repeat.index)
    out["item_repeat_pct"] = 0.0
    if bought.any():
        out.loc[bought, "item_repeat_pct"] = out.loc[bought, "item_repeat_rate"].rank(pct=True)
    out["event_timestamp"] = at
    return out.reset_index()[["item_id", "event_timestamp", *ITEM_FEATURES]]


def feature_snapshots(
    interactions: pd.DataFrame, items: pd.DataFrame, times: Sequence[pd.Timestamp]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item feature tables stacked over all snapshot times."""
    users = pd.concat([user_snapshot(interactions, items, t) for t in times], ignore_index=True)
    item_rows = pd.concat([item_snapshot(interactions, items, t) for t in times], ignore_index=True)
    return users, item_rows


__all__ = ["feature_snapshots", "snapshot_times", "USER_FEATURES", "ITEM_FEATURES", "TOP_ITEMS"]
