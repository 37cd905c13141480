"""User x item features derived from the user's feature row and the candidate item.

One definition of each feature (`derive_columns`), used by the training-set builder (after Feast's
point-in-time join, many users at once) and by the online path (after the online lookup, one user):
training and serving cannot drift apart. Only the gather differs: where the candidate stands in the
user's lists is found with a vectorised explode/join over many users offline (`lookups_offline`)
and with one dict per list online (`lookups_one_user`); both hand the same arrays to the same
formulas, and a test compares the two on real materialised rows.

The user row carries ranked lists (own items with scores/counts/recency, co-occurrence items with
scores, top categories with shares); a cross feature is the candidate's entry in those lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np
import pandas as pd

from shoprank.features.calendar import EventPeriod, event_share, load_calendar
from shoprank.features.session_inputs import SESSION_INPUTS

# Inputs of the ranking model, in a fixed order: raw values, the model does its own scaling.
# Volume-dependent counts are not inputs (user_n_purchases/_baskets/_items/_interactions grow with
# the history before the snapshot; item_pop_7d/_30d, item_buyers_30d, item_interactions_7d follow the
# week's traffic): rates and shares stand in for them, so a model trained on December snapshots
# reads a February snapshot on the same scale. The raw counts stay Feast fields (rates use them).
NUMERIC_FEATURES = [
    "user_days_since_last", "user_avg_price", "user_n_baskets_30d", "user_baskets_per_week",
    "item_price", "item_repeat_pct", "item_pop_7d_per_100k", "item_buyers_30d_per_10k",
    "ui_score", "ui_rank_recip", "ui_days", "ui_in_history", "ui_count", "ui_count_share", "ui_rate_per_day",
    "ui_decayed", "ui_first_days",
    "ui_cooc_score", "ui_cooc_rank_recip", "ui_knn_score", "ui_knn_rank_recip", "uc_match", "uc_share", "price_ratio",
    "ctx_event_share",  # calendar context of the predicted window (features/calendar.py)
    # how this user shops and where this item's demand is heading (ratio features in derive_columns)
    "user_explore_share", "user_basket_size", "item_trend",
    *SESSION_INPUTS,  # the live session (features/session_inputs.py); 0 without one
]
# The raw item id is not an input: its embedding overfitted the training weeks in the first ranker;
# the category carries the part of the item identity a model can generalise from.
STRING_FEATURES = ["item_category"]
MODEL_INPUTS = NUMERIC_FEATURES + STRING_FEATURES
NEVER_DAYS = 365.0
# Elapsed-time inputs (days since the user's last visit, since the item's last/first purchase) are
# capped here: training snapshots see 5-9 weeks of history (the data starts 2000-11-01) while a
# later snapshot sees more, and a value beyond anything seen in training is an extrapolation (72% of
# the test snapshot's rows had a history longer than the training 99th percentile). Past the cap
# "long ago" is all the model needs to know; NEVER_DAYS stays apart as "not in the history".
DAYS_CAP = 60.0

# list column -> (lookup prefix, {value list column: lookup name})
LISTS = {
    "user_top_items": ("own", {"user_top_item_scores": "own_score", "user_top_item_days": "own_days",
                               "user_top_item_counts": "own_count", "user_top_item_decayed": "own_decayed",
                               "user_top_item_first_days": "own_first_days"}),
    "user_cooc_items": ("cooc", {"user_cooc_scores": "cooc_score"}),
    "user_knn_items": ("knn", {"user_knn_scores": "knn_score"}),
    "user_top_categories": ("cat", {"user_top_category_shares": "cat_share"}),
}
# Scalar Feast fields the formulas read: the user's (one value per request online) and the item's.
USER_SCALARS = ("user_n_baskets", "user_history_days", "user_days_since_last", "user_avg_price", "user_n_items",
                "user_n_purchases")
ITEM_SCALARS = ("item_price", "item_pop_7d", "item_pop_30d")
# Columns derive_columns writes (ctx_event_share comes from the calendar, `context_column`).
DERIVED = ("ui_score", "ui_rank_recip", "ui_days", "ui_in_history", "ui_count", "ui_count_share",
           "user_baskets_per_week", "ui_decayed", "ui_rate_per_day", "ui_first_days", "ui_cooc_score",
           "ui_cooc_rank_recip", "ui_knn_score", "ui_knn_rank_recip", "uc_match", "uc_share", "price_ratio",
           "user_explore_share", "user_basket_size", "item_trend")

Columns = dict[str, np.ndarray]


def _as_list(value: object) -> list:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(value)  # type: ignore[call-overload]


def _user_groups(frame: pd.DataFrame) -> np.ndarray:
    """One code per (user, snapshot): rows of a group share the same user lists."""
    keys = [c for c in ("user_key", "event_timestamp") if c in frame]
    if not keys:
        return np.arange(len(frame))
    if len(keys) == 1:
        return pd.factorize(frame[keys[0]])[0]
    return frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()


def _explode(frame: pd.DataFrame, groups: np.ndarray, first: np.ndarray, key_col: str,
             value_cols: dict[str, str]) -> pd.DataFrame:
    """Long (group, key, position, values...) rows from the list columns of each group's first row."""
    keys = [_as_list(v) for v in frame[key_col].to_numpy()[first]] if key_col in frame else [[] for _ in first]
    lens = np.array([len(k) for k in keys], dtype=np.int64)
    out = pd.DataFrame({"_g": np.repeat(groups[first], lens),
                        "_key": np.array([x for k in keys for x in k], dtype=object),
                        "_pos": np.concatenate([np.arange(n) for n in lens]) if len(lens) else np.zeros(0, int)})
    for col, name in value_cols.items():
        if col in frame:
            vals = [_as_list(v) for v in frame[col].to_numpy()[first]]
            flat = [float(v[i]) if i < len(v) and v[i] is not None else np.nan
                    for v, n in zip(vals, lens, strict=True) for i in range(n)]
            out[name] = np.asarray(flat, dtype="float64")
        else:
            out[name] = np.nan
    return out.drop_duplicates(["_g", "_key"], keep="first")


def lookups_offline(frame: pd.DataFrame) -> Columns:
    """Where each row's candidate (item, and its category) stands in its user's lists, for many users.

    The lists are exploded once per (user, snapshot) and joined to the candidate rows, so the cost is
    linear in rows + list entries (millions of candidates in seconds). Absent: position NaN.
    """
    n = len(frame)
    groups = _user_groups(frame)
    _, first = np.unique(groups, return_index=True)
    out: Columns = {}
    for list_col, (prefix, values) in LISTS.items():
        key_col = "item_category" if prefix == "cat" else "item_id"
        keys = frame[key_col].to_numpy(dtype=object) if key_col in frame else np.full(n, None, dtype=object)
        found = pd.DataFrame({"_g": groups, "_key": keys}).merge(_explode(frame, groups, first, list_col, values),
                                                                 on=["_g", "_key"], how="left")
        out[f"{prefix}_pos"] = found["_pos"].to_numpy(dtype="float64")
        for name in values.values():
            out[name] = found[name].to_numpy(dtype="float64")
    return out


def lookups_one_user(user: Mapping[str, object] | None, item_ids: Sequence[str],
                     categories: Sequence[object]) -> Columns:
    """The same lookups for one user's candidates, from the user's online row (a dict per list)."""
    n = len(item_ids)
    out: Columns = {}
    for list_col, (prefix, values) in LISTS.items():
        listed = _as_list(user.get(list_col) if user is not None else None)
        # built back to front, so a key listed twice keeps its first (best) position, as offline
        where = dict(zip(reversed(listed), range(len(listed) - 1, -1, -1), strict=True))
        keys = categories if prefix == "cat" else item_ids
        pos = np.fromiter(map(where.get, keys, repeat(-1)), dtype=np.int64, count=n)
        hit = pos >= 0
        out[f"{prefix}_pos"] = np.where(hit, pos, np.nan)
        for col, name in values.items():
            vals = _as_list(user.get(col) if user is not None else None)
            table = np.array([*vals, None], dtype="float64")  # None reads NaN
            # a value list shorter than its key list reads NaN, as offline; -1 hits the padding NaN
            index = np.where(hit & (pos < len(vals)), pos, len(vals))
            out[name] = table[index] if n else np.zeros(0)
    return out


def _numeric(data: Mapping | pd.DataFrame, column: str, n: int) -> np.ndarray:
    """float64 values of a column (offline) or of the user's scalar broadcast (online); NaN where missing."""
    if column not in data:
        return np.full(n, np.nan)
    value = data[column]
    if isinstance(value, pd.Series):
        return pd.to_numeric(value, errors="coerce").to_numpy(dtype="float64")
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype("float64", copy=False)
    if isinstance(value, np.ndarray):
        return pd.to_numeric(pd.Series(value), errors="coerce").to_numpy(dtype="float64")
    scalar = np.nan if value is None else float(value)  # type: ignore[arg-type]
    return np.full(n, scalar)


def _zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def derive_columns(lk: Columns, data: Mapping | pd.DataFrame, n: int) -> Columns:
    """Every derived feature from the list lookups and the user's/item's Feast scalars: the one definition.

    Cross features say how the user has related to this item and its category before; the ratio
    features (`user_explore_share`, `user_basket_size`, `item_trend`) are ratios of Feast counts that
    stay on one scale whatever the history length: a listwise ranker orders one user's own items
    against new popular ones, and how many of each belong in the top places depends on how the user
    shops (distinct items per purchase line; lines per basket day) and where the item's demand is
    heading (last week against its 30-day weekly average, >1 rising).
    """
    col = {name: _numeric(data, name, n) for name in (*USER_SCALARS, *ITEM_SCALARS)}
    out: Columns = {}
    hit = ~np.isnan(lk["own_pos"])
    out["ui_score"] = np.where(hit, _zero(lk["own_score"]), 0.0)
    out["ui_rank_recip"] = np.where(hit, 1.0 / (_zero(lk["own_pos"]) + 1.0), 0.0)
    out["ui_days"] = np.where(hit, np.minimum(np.where(np.isnan(lk["own_days"]), DAYS_CAP, lk["own_days"]), DAYS_CAP),
                              NEVER_DAYS)
    out["ui_in_history"] = hit.astype("float64")
    # counts: purchase events of the item (older feature rows without counts: 1 if in history)
    count = lk["own_count"]
    out["ui_count"] = np.where(hit, np.where(np.isnan(count), 1.0, count), 0.0)
    baskets = _zero(col["user_n_baskets"])
    out["ui_count_share"] = out["ui_count"] / np.maximum(baskets, 1.0)
    # shopping frequency: baskets per week observed (a rate; raw counts grow with the history length)
    out["user_baskets_per_week"] = baskets * 7.0 / np.maximum(_zero(col["user_history_days"]), 7.0)
    out["ui_decayed"] = np.where(hit, _zero(lk["own_decayed"]), 0.0)
    first_days = np.where(hit, np.where(np.isnan(lk["own_first_days"]), NEVER_DAYS, lk["own_first_days"]),
                          NEVER_DAYS)
    # purchases per week since the user first bought the item (repurchase cadence)
    out["ui_rate_per_day"] = np.where(hit, out["ui_count"] / (first_days + 7.0), 0.0)
    out["ui_first_days"] = np.where(hit, np.minimum(first_days, DAYS_CAP), NEVER_DAYS)
    for prefix in ("cooc", "knn"):
        # the candidate's score in a scored list and 1 / its place there (0 when not listed)
        lhit = ~np.isnan(lk[f"{prefix}_pos"])
        out[f"ui_{prefix}_score"] = np.where(lhit, _zero(lk[f"{prefix}_score"]), 0.0)
        out[f"ui_{prefix}_rank_recip"] = np.where(lhit, 1.0 / (_zero(lk[f"{prefix}_pos"]) + 1.0), 0.0)
    khit = ~np.isnan(lk["cat_pos"])
    out["uc_match"] = np.where(khit, 1.0 / (_zero(lk["cat_pos"]) + 1.0), 0.0)
    out["uc_share"] = np.where(khit, _zero(lk["cat_share"]), 0.0)
    if "user_days_since_last" in data:
        out["user_days_since_last"] = np.minimum(col["user_days_since_last"], DAYS_CAP)  # NaN stays NaN
    if "item_price" in data and "user_avg_price" in data:
        price, avg = _zero(col["item_price"]), _zero(col["user_avg_price"])
        out["price_ratio"] = np.where(avg > 0, price / np.maximum(avg, 1e-9), 0.0)
    else:
        out["price_ratio"] = np.zeros(n)
    out["user_explore_share"] = _zero(col["user_n_items"]) / np.maximum(_zero(col["user_n_purchases"]), 1.0)
    out["user_basket_size"] = _zero(col["user_n_purchases"]) / np.maximum(baskets, 1.0)
    out["item_trend"] = (_zero(col["item_pop_7d"]) + 1.0) / (_zero(col["item_pop_30d"]) * 7.0 / 30.0 + 1.0)
    return out


_CROSS = tuple(name for name in DERIVED if name not in ("user_explore_share", "user_basket_size", "item_trend"))


def add_cross_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ui_* / uc_* columns: how the user has related to this item and its category before."""
    out = frame.copy().reset_index(drop=True)
    derived = derive_columns(lookups_offline(out), out, len(out))
    for name in (*_CROSS, "user_days_since_last"):
        if name in derived:
            out[name] = derived[name]
    out.index = frame.index
    return out


def add_ratio_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The ratio features of `derive_columns` alone (no list lookups needed)."""
    n = len(frame)
    empty = {f"{prefix}_pos": np.full(n, np.nan) for prefix, _ in LISTS.values()}
    derived = derive_columns(empty | {v: np.full(n, np.nan) for _, vals in LISTS.values() for v in vals.values()},
                             frame, n)
    return frame.assign(**{name: derived[name] for name in ("user_explore_share", "user_basket_size", "item_trend")})


def context_column(starts: pd.Series | Sequence[pd.Timestamp], horizon_days: float,
                   periods: Sequence[EventPeriod] | None = None) -> np.ndarray:
    """`ctx_event_share` for windows starting at each given time (see features/calendar.py)."""
    return event_share(starts, horizon_days, load_calendar() if periods is None else periods)


def add_model_features(frame: pd.DataFrame, horizon_days: float, at: pd.Timestamp | None = None,
                       periods: Sequence[EventPeriod] | None = None) -> pd.DataFrame:
    """Everything the ranker derives after the Feast lookup: cross and ratio features, then the calendar context
    of the predicted window (from each row's cut-off offline, from `at` online). The one call the
    training set, the benchmark and the offline scoring share, so none of them can miss a part."""
    out = frame.copy().reset_index(drop=True)
    derived = derive_columns(lookups_offline(out), out, len(out))
    if at is not None:
        starts: pd.Series = pd.Series([pd.Timestamp(at)] * len(out))
    elif "event_timestamp" in out:
        starts = out["event_timestamp"]
    else:
        raise ValueError("context features need the window start: an `event_timestamp` column or `at`")
    derived["ctx_event_share"] = context_column(starts, horizon_days, periods)
    out = out.assign(**derived)
    out.index = frame.index
    return out


def online_model_features(user: Mapping[str, object] | None, items: Mapping[str, np.ndarray],
                          ctx_event_share: float) -> Columns:
    """The same features for one user's candidates, without pandas: `items` holds `item_id` and the item
    Feast fields as arrays (one entry per candidate), `user` the user's online row (None: unknown), and
    `ctx_event_share` is `context_column` of the window that starts now (it changes by the minute, so
    the caller computes it once for many requests)."""
    item_ids = items["item_id"]
    n = len(item_ids)
    data: dict[str, object] = dict(items)
    for name in USER_SCALARS + ("user_n_baskets_30d",):
        data[name] = user.get(name) if user is not None else None
    derived = derive_columns(lookups_one_user(user, item_ids, items.get("item_category", [None] * n)), data, n)
    return {**data, **derived, "ctx_event_share": np.full(n, float(ctx_event_share))}  # type: ignore[dict-item]


def model_inputs(data: pd.DataFrame | Mapping[str, object], n: int | None = None,
                 numeric_features: Sequence[str] = NUMERIC_FEATURES,
                 string_features: Sequence[str] = STRING_FEATURES) -> dict[str, np.ndarray]:
    """Columns as the model's named inputs (float32 numerics, strings), nulls made neutral.
    The feature lists default to the recommender's; the search ranker passes its own."""
    size = len(data) if isinstance(data, pd.DataFrame) else int(n if n is not None else len(data["item_id"]))
    numeric = np.stack([_numeric(data, name, size) if name in data else np.zeros(size) for name in numeric_features]) \
        if size else np.zeros((len(numeric_features), 0))
    numeric = _zero(numeric).astype(np.float32)
    inputs: dict[str, np.ndarray] = {name: numeric[i] for i, name in enumerate(numeric_features)}
    for name in string_features:
        if name not in data:
            inputs[name] = np.full(size, "", dtype=object)
            continue
        col = data[name]
        if isinstance(col, pd.Series):
            inputs[name] = col.fillna("").astype(str).to_numpy(dtype=object)
        else:
            inputs[name] = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                     for v in col], dtype=object)
    return inputs
