"""User x item features derived from the user's feature row and the candidate item.

One function, used by the training-set builder (after Feast's point-in-time join) and by the
online path (after Feast's online lookup): training and serving cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Inputs of the ranking model, in a fixed order: raw values, the model does its own scaling.
NUMERIC_FEATURES = [
    "user_n_purchases", "user_n_baskets", "user_n_items", "user_days_since_last", "user_avg_price",
    "user_n_interactions", "item_price", "item_pop_7d", "item_pop_30d", "item_buyers_30d",
    "item_repeat_rate", "item_interactions_7d", "ui_score", "ui_rank_recip", "ui_days", "ui_in_history",
    "uc_match",
]
STRING_FEATURES = ["item_id", "item_category"]
MODEL_INPUTS = NUMERIC_FEATURES + STRING_FEATURES
NEVER_DAYS = 365.0


def _as_list(value: object) -> list:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(value)  # type: ignore[call-overload]


def add_cross_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ui_* / uc_* columns: how the user has related to this item and its category before."""
    out = frame.copy()
    n = len(out)
    score = np.zeros(n)
    rank_recip = np.zeros(n)
    days = np.full(n, NEVER_DAYS)
    cat_match = np.zeros(n)
    tops = out["user_top_items"].to_numpy() if "user_top_items" in out else np.empty(n, dtype=object)
    scores = out["user_top_item_scores"].to_numpy() if "user_top_item_scores" in out else tops
    recency = out["user_top_item_days"].to_numpy() if "user_top_item_days" in out else tops
    cats = out["user_top_categories"].to_numpy() if "user_top_categories" in out else tops
    items = out["item_id"].to_numpy()
    categories = out["item_category"].to_numpy() if "item_category" in out else np.full(n, None)
    for row in range(n):
        top = _as_list(tops[row])
        if top:
            try:
                pos = top.index(items[row])
            except ValueError:
                pos = -1
            if pos >= 0:
                score[row] = _as_list(scores[row])[pos]
                rank_recip[row] = 1.0 / (pos + 1)
                days[row] = _as_list(recency[row])[pos]
        top_cats = _as_list(cats[row])
        if categories[row] in top_cats:
            cat_match[row] = 1.0 / (top_cats.index(categories[row]) + 1)
    out["ui_score"] = score
    out["ui_rank_recip"] = rank_recip
    out["ui_days"] = days
    out["ui_in_history"] = (score > 0).astype("float64")
    out["uc_match"] = cat_match
    return out


def model_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns as the model's named inputs (float32 numerics, strings), nulls made neutral."""
    inputs: dict[str, np.ndarray] = {}
    for name in NUMERIC_FEATURES:
        col = frame[name] if name in frame else pd.Series(0.0, index=frame.index)
        inputs[name] = pd.to_numeric(col, errors="coerce").fillna(0.0).to_numpy(dtype=np.float32)
    for name in STRING_FEATURES:
        col = frame[name] if name in frame else pd.Series("", index=frame.index)
        inputs[name] = col.fillna("").astype(str).to_numpy(dtype=object)
    return inputs
