"""The sequence the model reads: one definition offline (training, the feature job's field) and online
(the API adds the live session), and its padded input."""

import numpy as np
import pandas as pd

from shoprank.models.sequence_input import history_input, item_sequences, online_history, pad_left

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def events(rows) -> pd.DataFrame:
    return pd.DataFrame([{"user_id": u, "item_id": i, "event_type": kind, "event_time": T0 + pd.Timedelta(hours=h)}
                         for u, i, kind, h in rows])


def test_items_are_in_first_purchase_order_once_each_ties_by_id_views_ignored():
    frame = events([("u", "b", "purchase", 2), ("u", "a", "purchase", 1), ("u", "a", "purchase", 5),
                    ("u", "d", "purchase", 3), ("u", "c", "purchase", 3), ("u", "z", "view", 0),
                    ("v", "x", "purchase", 9)])
    sequences = item_sequences(frame)
    assert sequences["u"] == ["a", "b", "c", "d"]  # a once, at its first purchase; c before d at the same time
    assert sequences["v"] == ["x"]
    assert item_sequences(frame, last=2)["u"] == ["c", "d"]  # the newest two, still oldest first


def test_online_history_is_the_row_then_the_carted_items_it_lacks_oldest_first():
    row = {"user_item_sequence": ["a", "b", "c"]}
    assert online_history(row, []) == ["a", "b", "c"]
    # carted is newest first: e was carted after d; b is in the history already
    assert online_history(row, ["e", "b", "d"]) == ["a", "b", "c", "d", "e"]
    assert online_history(None, ["d"]) == ["d"]
    assert online_history({"user_item_sequence": None}, []) == []


def test_inputs_are_right_aligned_with_the_newest_item_last():
    padded = pad_left([[5, 6, 7], [8]], 2)
    assert padded.tolist() == [[6, 7], [0, 8]] and padded.dtype == np.int32
    assert history_input([["a", "b", "c"], []], 4).tolist() == [["", "a", "b", "c"], ["", "", "", ""]]
