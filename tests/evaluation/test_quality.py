"""The quality benchmark's pieces: point-in-time features, candidates, ranking, the JSON table."""

import numpy as np
import pandas as pd

from shoprank.evaluation.protocols import leave_last_out_split, temporal_split
from shoprank.evaluation.quality import (
    METRICS,
    ServedConfig,
    ServedPipeline,
    _rank_frame,
    format_quality_table,
    mean_std,
)


def _events(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 users buying from 30 items every few days, Nov 2000 - Feb 2001 (Ta Feng's span)."""
    rng = np.random.default_rng(seed)
    rows = []
    days = pd.date_range("2000-11-01", "2001-02-27", freq="D", tz="UTC")
    for u in range(60):
        favourites = rng.choice(30, 4, replace=False)
        for day in days[rng.integers(0, 4) :: 4 + u % 3]:
            for item in rng.choice(favourites, 2, replace=False).tolist() + [int(rng.integers(30))]:
                rows.append((day, f"u{u}", f"i{item}", "purchase", 1.0 + item, 1, f"u{u}-{day.date()}"))
    events = pd.DataFrame(rows, columns=["event_time", "user_id", "item_id", "event_type", "price", "quantity",
                                         "session_id"]).drop_duplicates(["event_time", "user_id", "item_id"])
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(30)], "category": [f"c{k % 5}" for k in range(30)],
                          "brand": None, "price": [1.0 + k for k in range(30)], "title": None})
    return events.reset_index(drop=True), items


def test_served_pipeline_features_are_point_in_time():
    events, items = _events()
    split = temporal_split(events)
    pipe = ServedPipeline(split, items, ServedConfig(max_users_per_cutoff=50), log=lambda *_: None)
    pipe.prepare()
    assert set(pipe.examples["split"]) == {"train", "validation"}
    val_users = set(pipe.examples.loc[pipe.examples["split"] == "validation", "user_key"])
    last = pipe.train_at[-1]
    train_last = pipe.examples[(pipe.examples["split"] == "train") & (pipe.examples["event_timestamp"] == last)]
    assert not val_users & set(train_last["user_key"])  # the held-out users never train at that cut-off
    frame = pipe.features(pipe.examples)
    # a feature row at cut-off t counts only purchases strictly before t
    buys = pipe.inter
    for at in pipe.train_at[:2]:
        row = frame[frame["event_timestamp"] == at].iloc[0]
        before = buys[(buys["user_key"] == row["user_key"]) & (buys["event_time"] < at)]
        assert row["user_n_purchases"] == len(before)
        own = before[before["item_id"] == row["item_id"]]
        assert row["ui_count"] == len(own)
    cands = pipe.test_candidates({split.test_users[0]: ["i29"]})
    assert set(cands["user_key"]) == set(split.test_users)
    assert (cands["event_timestamp"] == split.cutoff).all()
    assert "i29" in set(cands.loc[cands["user_key"] == split.test_users[0], "item_id"])


def test_leave_last_out_candidates_exclude_the_history():
    events, items = _events(1)
    split = leave_last_out_split(events)
    config = ServedConfig(train_cutoffs=("2000-12-21", "2001-01-04"), new_items_only=True, max_users_per_cutoff=50)
    pipe = ServedPipeline(split, items, config, log=lambda *_: None)
    pipe.prepare()
    cands = pipe.test_candidates(None)
    for user, group in cands.groupby("user_key"):
        assert not set(group["item_id"]) & split.exclude[user]


def test_rank_frame_orders_excludes_and_fills():
    frame = pd.DataFrame({"user_key": ["u", "u", "u", "v"], "item_id": ["a", "b", "c", "a"]})
    out = _rank_frame(frame, np.array([0.1, 0.9, 0.5, 0.3]), 3, ["p", "a", "q"], {"u": {"c"}, "v": set()})
    assert out["u"] == ["b", "a", "p"]
    assert out["v"] == ["a", "p", "q"]


def test_mean_std_and_table():
    runs = [dict.fromkeys(METRICS, 0.1), dict.fromkeys(METRICS, 0.3)]
    agg = mean_std(runs)
    assert np.isclose(agg["recall@20"], 0.2) and np.isclose(agg["recall@20_std"], np.std([0.1, 0.3], ddof=1))
    assert set(agg) == set(METRICS) | {f"{m}_std" for m in METRICS}
    table = format_quality_table({"temporal": {"model/served": agg}})
    assert "model/served" in table and "0.2000 ± 0.1414" in table
