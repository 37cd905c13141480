"""Training from feedback: logged impressions cross the zone boundary pseudonymised, become
shown-but-not-taken examples with their position, and the ranker learns a position bias that stays
out of the exported model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shoprank.features.pseudonymise import PUBLIC_IMPRESSION_COLUMNS, pseudonym, to_public_impressions
from shoprank.features.training_set import add_shown

T0 = pd.Timestamp("2024-02-01", tz="UTC")
T1 = pd.Timestamp("2024-02-08", tz="UTC")


def test_impressions_cross_keyed_with_their_position_and_click_but_no_request_or_session():
    feedback = pd.DataFrame({
        "event_type": ["impression", "impression", "click", "view"],
        "user_id": ["alice", "alice", "alice", "alice"], "item_id": ["i1", "i2", "i2", "i2"],
        "event_time": [T0, T0, T0 + pd.Timedelta(seconds=5), T0], "position": [1, 2, 2, None],
        "request_id": ["r1", "r1", "r1", None], "session_id": ["s", "s", "s", "s"]})
    public = to_public_impressions(feedback, b"k")
    assert list(public.columns) == PUBLIC_IMPRESSION_COLUMNS
    assert public["user_key"].tolist() == [pseudonym("alice", b"k")] * 2
    assert public["clicked"].tolist() == [False, True] and public["position"].tolist() == [1, 2]
    assert to_public_impressions(feedback.iloc[3:], b"k").empty


def test_a_rule_placed_impression_crosses_flagged_and_teaches_the_ranker_nothing():
    from shoprank.data.served import rule_placed_items
    from shoprank.features.training_set import ranker_impressions

    requests = pd.DataFrame({"request_id": ["r1", "r2"], "items": [["i7", "i1", "i2"], ["i3"]],
                             "rules": [["pin:hero", None, "diversity"], None]})
    placed = rule_placed_items(requests)
    assert placed == {("r1", "i7")}  # a pin; diversity only moved the ranker's own item
    feedback = pd.DataFrame({
        "event_type": ["impression", "impression", "click"], "user_id": ["alice"] * 3,
        "item_id": ["i7", "i1", "i7"], "event_time": [T0] * 3, "position": [1, 2, 1],
        "request_id": ["r1", "r1", "r1"], "session_id": ["s"] * 3})
    public = to_public_impressions(feedback, b"k", placed)
    assert public["rule_placed"].tolist() == [True, False] and public["clicked"].tolist() == [True, False]
    learnt = ranker_impressions(public)
    assert learnt["item_id"].tolist() == ["i1"] and learnt["position"].tolist() == [2]  # displayed position
    buys = pd.DataFrame({"user_key": [pseudonym("alice", b"k")], "item_id": ["i7"], "event_type": ["purchase"],
                         "event_time": [T0 + pd.Timedelta(days=1)]})
    examples = pd.DataFrame({"user_key": [pseudonym("alice", b"k")], "item_id": ["i1"], "label": [0],
                             "event_timestamp": [T0 - pd.Timedelta(hours=1)], "split": ["train"]})
    out = add_shown(examples, learnt, buys, label_days=7)
    assert "i7" not in set(out["item_id"])  # the pinned, clicked, bought item is no example of the ranker's
    assert ranker_impressions(public.drop(columns="rule_placed")).equals(public.drop(columns="rule_placed"))


def test_shown_items_become_training_examples_and_every_example_keeps_its_position():
    examples = pd.DataFrame({"user_key": ["u1", "u1", "u2", "u1", "u2"], "item_id": ["i1", "i2", "i1", "i1", "i1"],
                             "label": [0, 0, 1, 0, 0], "event_timestamp": [T0, T0, T0, T1, T1],
                             "split": ["train", "train", "train", "test", "test"]})
    shown = pd.DataFrame({"user_key": ["u1", "u1", "u1", "u1", "u2", "u3"],
                          "item_id": ["i1", "i9", "i9", "i8", "i7", "i9"],
                          "event_time": [T0 + pd.Timedelta(hours=h) for h in (1, 2, 3, 4)]
                          + [T1 + pd.Timedelta(hours=1), T0],
                          "position": [3, 5, 2, 1, 4, 1], "clicked": False})
    buys = pd.DataFrame({"user_key": ["u1"], "item_id": ["i9"], "event_type": ["purchase"],
                         "event_time": [T0 + pd.Timedelta(days=2)]})
    out = add_shown(examples, shown, buys, label_days=7)
    rows = out.set_index(["event_timestamp", "user_key", "item_id"])
    assert rows.loc[(T0, "u1", "i1"), "shown_position"] == 3
    assert rows.loc[(T0, "u1", "i2"), "shown_position"] == 0
    assert rows.loc[(T0, "u1", "i9"), ["label", "shown_position", "split"]].tolist() == [1, 2, "train"]
    assert rows.loc[(T0, "u1", "i8"), "label"] == 0  # shown, not taken: a negative
    assert (T0, "u3", "i9") not in rows.index  # not a user of that cut-off's examples
    assert (T1, "u2", "i7") not in rows.index  # the test split keeps its candidates ...
    assert len(out) == len(examples) + 2
    assert add_shown(examples, None, buys, 7)["shown_position"].eq(0).all()


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_the_ranker_learns_a_position_bias_and_exports_without_it(tmp_path, loss):
    import tensorflow as tf

    from shoprank.models.export import CARD_FILE
    from shoprank.models.train import TrainConfig
    from shoprank.orchestration import steps
    from tests.conftest import tiny_examples

    rng = np.random.default_rng(3)
    train = tiny_examples(1500)
    train["shown_position"] = rng.integers(0, 11, len(train))
    # clicks at the top of the list happen whatever the item: the bias must take them
    top = train["shown_position"] == 1
    train.loc[top, "label"] = (rng.random(top.sum()) < 0.9).astype(int)
    frame = pd.concat([train.assign(split="train"), tiny_examples(400, seed=1).assign(split="validation",
                                                                                   shown_position=0)])
    frame["list_id"] = np.arange(len(frame)) // 10  # the listwise loss's lists: ten shown items each
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    frame.to_parquet(dataset / "examples.parquet", index=False)
    (dataset / "meta.json").write_text(json.dumps({"cutoffs": ["2001-01-01", "2001-01-08"]}))
    config = TrainConfig(epochs=3, batch_size=128, loss=loss, learning_rate=1e-2)
    result = steps.train(dataset, tmp_path / "model", tmp_path / "report", config)
    card = json.loads(next((tmp_path / "model").rglob(CARD_FILE)).read_text())
    bias = card["position_bias"]
    assert result["shown_rows"] == int((train["shown_position"] > 0).sum())
    assert bias[0] == 0.0 and bias[1] > max(bias[2:11]), bias  # never-shown rows get no bias
    signature = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    assert "shown_position" not in signature.structured_input_signature[1]
