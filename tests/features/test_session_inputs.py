"""The ranker's session inputs: point-in-time offline, the same values online, and served lists as
request-time training examples."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from shoprank.features.session import merge_session, session_state
from shoprank.features.session_inputs import MAX_SESSION_ITEMS, SESSION_INPUTS, add_session_inputs
from shoprank.features.training_set import SERVED_TEST, add_requests, served_lists
from shoprank.serving.api.recommender import OnlineRecommender

T = pd.Timestamp("2024-03-01 12:00", tz="UTC")
CATEGORY = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B", "c1": "C"}


def minutes(m: float) -> pd.Timestamp:
    return T + pd.Timedelta(minutes=m)


def events(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"user_key": u, "item_id": i, "event_type": e, "event_time": minutes(m)}
                         for u, i, e, m in rows])


def candidates(user: str, items: list[str], at: pd.Timestamp = T, category: dict | None = None) -> pd.DataFrame:
    category = category or CATEGORY
    return pd.DataFrame({"user_key": user, "item_id": items, "item_category": [category[i] for i in items],
                         "event_timestamp": at})


def test_only_the_thirty_minutes_strictly_before_the_example_count():
    log = events([("u", "a1", "view", -10), ("u", "b1", "cart", -5), ("u", "b2", "view", -40),
                  ("u", "c1", "view", 0), ("u", "a2", "view", 3), ("u", "a3", "purchase", -2),
                  ("v", "a2", "view", -1)])
    out = add_session_inputs(candidates("u", ["a1", "a2", "b1", "b2", "c1"]), log, CATEGORY)
    assert out["sess_viewed"].tolist() == [1, 0, 0, 0, 0]  # b2 too old, c1 at T, a2 after T, v's view not u's
    assert out["sess_carted"].tolist() == [0, 0, 1, 0, 0]
    assert out["sess_cat_share"].tolist() == [0.5, 0.5, 0.5, 0.5, 0.0]  # session = {b1, a1}: half A, half B
    later = add_session_inputs(candidates("u", ["a2", "c1"], at=minutes(5)), log, CATEGORY)
    assert later["sess_viewed"].tolist() == [1, 1]  # the same log seen from 12:05


def test_no_session_reads_zero_and_keeps_the_rows_in_order():
    frame = pd.concat([candidates("u", ["a1", "b1"]), candidates("w", ["a2"])], ignore_index=True)
    out = add_session_inputs(frame.iloc[::-1], events([("w", "a2", "view", -1)]), CATEGORY)
    assert out["item_id"].tolist() == ["a2", "b1", "a1"]
    assert out["sess_viewed"].tolist() == [1, 0, 0]
    empty = add_session_inputs(frame, events([])[[]].assign(user_key=[], item_id=[], event_type=[], event_time=[]),
                               CATEGORY)
    assert (empty[list(SESSION_INPUTS)] == 0).all().all()


def test_offline_values_equal_what_the_online_path_computes_from_the_pushed_session():
    rows = [("u", f"a{k % 3 + 1}", "view", -25 + k) for k in range(8)] + [("u", "b1", "cart", -3),
                                                                          ("u", "c1", "view", -45)]
    rows += [("u", f"x{k}", "view", -20 + k * 0.1) for k in range(MAX_SESSION_ITEMS + 5)]  # past the cap
    log = events(rows)
    category = CATEGORY | {f"x{k}": "X" for k in range(MAX_SESSION_ITEMS + 5)}
    # the recommender adds the session's items to the candidates: their categories come with the rows
    items = ["a1", "a2", "a3", "b1", "b2", "c1", *[f"x{k}" for k in range(MAX_SESSION_ITEMS + 5)]]
    offline = add_session_inputs(candidates("u", items, category=category), log, category)
    pushed = merge_session(None, [{"event_type": e, "item_id": i, "query": None,
                                   "event_time": minutes(m).timestamp()} for _, i, e, m in rows], T.timestamp())
    live = session_state(pushed, T.timestamp())
    table = {"item_id": np.array(items, dtype=object),
             "item_category": np.array([category[i] for i in items], dtype=object)}
    online = OnlineRecommender.inputs(None, table, 0.0, live)
    for name in SESSION_INPUTS:
        assert online[name].tolist() == offline[name].astype("float32").tolist(), name
    viewed = offline.set_index("item_id")["sess_viewed"]
    assert viewed.sum() == MAX_SESSION_ITEMS  # the newest 20 distinct of 28 viewed in the window
    assert viewed["x24"] == 1 and viewed["x0"] == 0 and viewed["c1"] == 0  # x0 pushed out; c1 too old
    assert offline["sess_carted"].tolist()[:6] == [0, 0, 0, 1, 0, 0]


def test_served_lists_become_request_time_examples_in_the_split_their_label_window_allows():
    day = pd.Timedelta(days=1)
    shown = pd.DataFrame({"user_key": ["u", "u", "u", "u", "w", "w"],
                          "item_id": ["a1", "b1", "a1", "c1", "a2", "a3"],
                          "event_time": [T, T + pd.Timedelta(milliseconds=2), T + pd.Timedelta(seconds=30),
                                         T + pd.Timedelta(hours=2), T + 3 * day, T + 3 * day],
                          "position": [1, 2, 4, 1, 1, 2], "clicked": False})
    lists = served_lists(shown)
    assert lists.groupby(["user_key", "shown_at"]).ngroups == 3  # u at T (3 impressions), u at T+2h, w
    assert lists.set_index(["user_key", "item_id"]).loc[("u", "a1"), "position"] == 1  # best position kept
    buys = events([("u", "b1", "purchase", 30), ("u", "c1", "purchase", -60), ("w", "a3", "purchase", 60 * 72 + 5)])
    base = pd.DataFrame({"user_key": ["u"], "item_id": ["z"], "label": [0], "event_timestamp": [T.normalize()],
                         "split": ["train"]})
    out = add_requests(base, shown, buys, label_days=1, train_until=T + 2 * day,
                       held_out=(T + 3 * day - pd.Timedelta(hours=1), T + 5 * day))
    rows = out.set_index(["user_key", "item_id", "event_timestamp"])
    assert rows.loc[("u", "b1", T), ["label", "split", "shown_position"]].tolist() == [1, "train", 2]
    assert rows.loc[("u", "c1", T + pd.Timedelta(hours=2)), "label"] == 0  # bought before it was shown
    assert rows.loc[("w", "a3", T + 3 * day), ["label", "split"]].tolist() == [1, SERVED_TEST]
    assert len(out) == 1 + 5
    assert isinstance(out["event_timestamp"].dtype, pd.DatetimeTZDtype)  # what the point-in-time join needs
    # cut-off rows as read from parquet: whole seconds, and UTC as Python's own time-zone object
    coarse = add_requests(base.astype({"event_timestamp": pd.DatetimeTZDtype("s", UTC)}), shown, buys,
                          label_days=1, train_until=T + 2 * day)
    assert isinstance(coarse["event_timestamp"].dtype, pd.DatetimeTZDtype) and len(coarse) == 1 + 3
    late = add_requests(base, shown, buys, label_days=1, train_until=T + pd.Timedelta(hours=12))
    assert len(late) == 1  # label windows still open at the validation cut-off: not trained on
    assert add_requests(base, None, buys, 1, T) is base
    nothing_cut = base.iloc[:0].astype(object)  # a part whose users had no cut-off rows
    only_lists = add_requests(nothing_cut, shown, buys, label_days=1, train_until=T + 2 * day)
    assert isinstance(only_lists["event_timestamp"].dtype, pd.DatetimeTZDtype) and len(only_lists) == 3


def test_served_lists_are_judged_by_how_a_model_orders_what_was_bought():
    from shoprank.evaluation.ranking import served_list_metrics

    rows = pd.DataFrame({"user_key": ["u"] * 3 + ["w"] * 3 + ["x"] * 2, "item_id": list("abcabcab"),
                         "event_timestamp": [T] * 3 + [T + pd.Timedelta(hours=1)] * 3 + [T] * 2,
                         "label": [0, 1, 0, 1, 0, 0, 0, 0]})
    best = served_list_metrics(rows, np.array([0.1, 0.9, 0.2, 0.8, 0.1, 0.2, 0.5, 0.4]))
    assert best["ndcg@10"] == 1.0 and best["mrr"] == 1.0 and best["lists_with_purchase"] == 2
    worst = served_list_metrics(rows, np.array([0.9, 0.1, 0.2, 0.1, 0.5, 0.2, 0.5, 0.4]))
    assert worst["mrr"] == pytest.approx((1 / 3 + 1 / 3) / 2) and worst["auc"] < best["auc"]
