"""Cross features: the candidate's entries in the user's lists, per (user, snapshot), vectorised."""

import numpy as np
import pandas as pd
import pytest

from shoprank.features.derived import NEVER_DAYS, NUMERIC_FEATURES, add_cross_features, model_inputs
from shoprank.features.training_set import TrainingSetConfig, merge_candidates, user_candidates


def _rows() -> pd.DataFrame:
    t1, t2 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-08", tz="UTC")
    user = {"user_top_items": ["a", "b"], "user_top_item_scores": [3.0, 1.0], "user_top_item_days": [2.0, 9.0],
            "user_top_item_counts": [3, 1], "user_top_item_decayed": [2.5, 0.5],
            "user_top_item_first_days": [30.0, 9.0], "user_cooc_items": ["c", "a"], "user_cooc_scores": [0.4, 0.1],
            "user_knn_items": ["d", "c"], "user_knn_scores": [0.9, 0.2],
            "user_top_categories": ["x", "y"], "user_top_category_shares": [0.7, 0.3], "user_n_baskets": 4,
            "user_avg_price": 2.0}
    later = {**user, "user_top_items": ["b"], "user_top_item_scores": [5.0], "user_top_item_days": [1.0],
             "user_top_item_counts": [5], "user_top_item_decayed": [4.0], "user_top_item_first_days": [10.0]}
    rows = []
    for item, cat in (("a", "x"), ("b", "y"), ("c", "z")):
        rows.append({"user_key": "u", "event_timestamp": t1, "item_id": item, "item_category": cat,
                     "item_price": 4.0, **user})
    rows.append({"user_key": "u", "event_timestamp": t2, "item_id": "b", "item_category": "y", "item_price": 1.0,
                 **later})
    rows.append({"user_key": "v", "event_timestamp": t1, "item_id": "a", "item_category": "x", "item_price": 1.0,
                 "user_top_items": None})
    return pd.DataFrame(rows)


def test_cross_features_read_the_users_lists_per_snapshot():
    out = add_cross_features(_rows())
    a, b, c, b_later, stranger = (out.iloc[i] for i in range(5))
    assert a["ui_count"] == 3 and a["ui_rank_recip"] == 1.0 and a["ui_days"] == 2.0 and a["ui_in_history"] == 1
    assert b["ui_count"] == 1 and b["ui_rank_recip"] == 0.5 and b["ui_count_share"] == 0.25
    assert c["ui_in_history"] == 0 and c["ui_days"] == NEVER_DAYS and c["ui_cooc_score"] == 0.4
    assert a["ui_cooc_rank_recip"] == 0.5 and c["uc_match"] == 0 and b["uc_share"] == 0.3
    assert c["ui_knn_score"] == 0.2 and c["ui_knn_rank_recip"] == 0.5  # second in the neighbours' list
    assert a["ui_knn_score"] == 0 and a["ui_knn_rank_recip"] == 0 and stranger["ui_knn_score"] == 0
    assert b_later["ui_count"] == 5 and b_later["ui_rank_recip"] == 1.0  # the later snapshot's lists
    assert stranger["ui_in_history"] == 0 and stranger["ui_score"] == 0
    assert a["price_ratio"] == 2.0


def test_cross_features_keep_row_order_and_index():
    frame = _rows().iloc[::-1]
    frame.index = [10, 11, 12, 13, 14]
    out = add_cross_features(frame)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out.loc[14, "ui_count"] == 3 and out.loc[12, "ui_cooc_score"] == 0.4


def test_model_inputs_are_complete_and_neutral():
    x = model_inputs(add_cross_features(_rows()))
    assert set(NUMERIC_FEATURES) <= set(x) and all(np.isfinite(x[n]).all() for n in NUMERIC_FEATURES)


def test_candidates_merge_own_cooc_extra_popular_without_duplicates():
    got = merge_candidates(["a", "b"], ["p", "a"], 5, cooc_items=["c", "b", "d"], n_cooc=2, extra=["r"])
    assert got == ["a", "b", "c", "r", "p"]
    assert merge_candidates(["a"], ["p"], 5) == ["a", "p"]  # the old call still works
    got = merge_candidates(["a"], ["p"], 5, cooc_items=["c"], n_cooc=1, extra=["r"], knn_items=["k", "a", "m"],
                           n_knn=2)
    assert got == ["a", "c", "k", "r", "p"]  # neighbours' items after co-occurrence, cut at n_knn


def test_elapsed_days_are_capped_and_rates_replace_counts():
    from shoprank.features.derived import DAYS_CAP

    rows = _rows().iloc[:1].assign(user_top_item_days=[[90.0, 9.0]], user_top_item_first_days=[[95.0, 9.0]],
                                   user_days_since_last=88.0, user_history_days=28.0)
    out = add_cross_features(rows).iloc[0]
    assert out["ui_days"] == DAYS_CAP and out["ui_first_days"] == DAYS_CAP  # longer ago than training saw
    assert out["user_days_since_last"] == DAYS_CAP
    assert out["user_baskets_per_week"] == 1.0  # 4 baskets in 4 weeks
    assert out["ui_rate_per_day"] == pytest.approx(3 / (95.0 + 7.0))  # the rate uses the uncapped age
    not_owned = add_cross_features(_rows()).iloc[2]
    assert not_owned["ui_days"] == NEVER_DAYS and not_owned["ui_first_days"] == NEVER_DAYS


def test_ratio_features_describe_the_shopper_and_the_items_direction():
    from shoprank.features.derived import add_ratio_features

    frame = pd.DataFrame({
        "user_n_items": [10, 3, None], "user_n_purchases": [10, 12, None], "user_n_baskets": [5, 2, None],
        "item_pop_7d": [30, 0, None], "item_pop_30d": [30, 60, None]}, index=[7, 8, 9])
    out = add_ratio_features(frame)
    assert list(out["user_explore_share"]) == [1.0, 0.25, 0.0]  # never repeats / restocks / unknown user
    assert list(out["user_basket_size"]) == [2.0, 6.0, 0.0]
    rising, fading, unknown = out["item_trend"]
    assert rising == pytest.approx(31 / 8.0) and fading == pytest.approx(1 / 15.0) and unknown == 1.0
    assert list(out.index) == [7, 8, 9] and "user_explore_share" not in frame  # the input is left alone
    x = model_inputs(out)
    assert all(np.isfinite(x[n]).all() for n in ("user_explore_share", "user_basket_size", "item_trend"))


def test_user_candidates_read_the_feast_lists_and_tolerate_missing_ones():
    cfg = TrainingSetConfig(max_user_items=1, n_cooc=1, n_knn=1)
    lists = {"user_top_items": ["a", "b"], "user_cooc_items": np.array(["c", "d"]), "user_knn_items": ["k", "m"]}
    assert user_candidates(lists, ["p"], cfg, ["r"]) == ["a", "c", "k", "r", "p"]
    assert user_candidates({"user_top_items": ["a"], "user_knn_items": float("nan")}, ["p"], cfg) == ["a", "p"]
    assert user_candidates(None, ["p", "q"], cfg) == ["p", "q"]  # no features: popular only
