"""The ranker trains, learns, exports a named TF Serving signature and reloads identically."""

import json

import numpy as np
import pytest
import tensorflow as tf

from shoprank.evaluation.ranking import auc
from shoprank.features.derived import MODEL_INPUTS, model_inputs
from shoprank.models.export import CARD_FILE
from shoprank.models.train import TrainConfig, plot_curves, train_ranker
from tests.conftest import tiny_examples


def test_training_learns_the_signal(tmp_path):
    train, valid = tiny_examples(3000), tiny_examples(1000, seed=1)
    config = TrainConfig(epochs=4, batch_size=256, seed=3)
    result = train_ranker(train, valid, config, log_dir=tmp_path / "tb", verbose=0)
    scores = result.model.predict(model_inputs(valid), verbose=0)
    assert auc(valid["label"].to_numpy(), scores) > 0.8
    assert result.device == "CPU" and result.examples_per_second > 0
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))
    png = plot_curves(result.history, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_training_is_seeded(tmp_path):
    a = train_ranker(tiny_examples(), tiny_examples(200, 1), TrainConfig(epochs=1, seed=5), verbose=0)
    b = train_ranker(tiny_examples(), tiny_examples(200, 1), TrainConfig(epochs=1, seed=5), verbose=0)
    x = model_inputs(tiny_examples(50, 2))
    np.testing.assert_allclose(a.model.predict(x, verbose=0), b.model.predict(x, verbose=0), rtol=1e-5)


def test_single_label_data_is_refused():
    data = tiny_examples().assign(label=0)
    with pytest.raises(ValueError, match="needs both labels"):
        train_ranker(data, data, TrainConfig(epochs=1), verbose=0)


def test_export_has_named_signature_and_card(tiny_model_dir):
    fn = tf.saved_model.load(str(tiny_model_dir)).signatures["serving_default"]
    _, specs = fn.structured_input_signature
    assert sorted(specs) == sorted(MODEL_INPUTS)
    assert specs["item_category"].dtype == tf.string and specs["ui_score"].dtype == tf.float32
    assert "item_id" not in specs  # the raw id embedding memorised the training weeks: not an input
    assert list(fn.structured_outputs) == ["score"]
    assert json.loads((tiny_model_dir / CARD_FILE).read_text())["model"] == "ranker"
    assert not tiny_model_dir.with_name("ranker.partial").exists()
    x = model_inputs(tiny_examples(20, 4))
    out = fn(**{k: tf.constant(v) for k, v in x.items()})["score"].numpy()
    assert out.shape == (20,) and np.all((out > 0) & (out < 1))


def test_listwise_loss_is_softmax_over_each_list_plus_bce():
    from shoprank.models.train import listwise_loss

    logits = tf.constant([0.0, float(np.log(3.0)), 5.0, -5.0])
    labels = tf.constant([0.0, 1.0, 0.0, 0.0])
    segments = tf.constant([0, 0, 1, 1])  # list 1 has no positive: it adds nothing to the softmax term
    got = float(listwise_loss(logits, labels, segments, tf.constant(2), bce_weight=0.0))
    assert got == pytest.approx(-np.log(3.0 / 4.0), rel=1e-5)
    with_bce = float(listwise_loss(logits, labels, segments, tf.constant(2), bce_weight=1.0))
    bce = float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)))
    assert with_bce == pytest.approx(got + bce, rel=1e-5)


def test_listwise_training_learns_and_keeps_the_score_output(tmp_path):
    def lists(n, seed):
        frame = tiny_examples(n, seed)
        return frame.assign(user_key=[f"u{seed}_{k // 30}" for k in range(n)])

    train, valid = lists(3000, 0), lists(900, 1)
    result = train_ranker(train, valid, TrainConfig(epochs=4, batch_size=256, seed=3, loss="listwise"),
                          log_dir=tmp_path / "tb", verbose=0)
    scores = result.model.predict(model_inputs(valid), verbose=0).reshape(-1)
    assert auc(valid["label"].to_numpy(), scores) > 0.8
    assert np.all((scores > 0) & (scores < 1))  # still the sigmoid `score` the server returns
    assert {"loss", "val_loss", "auc", "val_auc"} <= set(result.history)
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be"):
        train_ranker(tiny_examples(), tiny_examples(), TrainConfig(epochs=1, loss="pairwise"), verbose=0)


def test_list_ndcg_ranks_inside_each_list():
    from shoprank.models.train import list_ndcg

    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    labels = np.array([0, 1, 0, 1, 0, 0, 0])  # list 2 has no positive: skipped
    perfect = list_ndcg(np.array([0.1, 0.9, 0.2, 0.8, 0.1, 0.5, 0.4]), labels, groups)
    assert perfect == pytest.approx(1.0)
    second = list_ndcg(np.array([0.9, 0.5, 0.2, 0.8, 0.1, 0.5, 0.4]), labels, groups)
    assert second == pytest.approx((1 / np.log2(3) + 1.0) / 2)
