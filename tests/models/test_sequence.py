"""The sequence model learns an order of items, recommends with exclusions, and exports a servable model."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from shoprank.evaluation.metrics import evaluate_rankings
from shoprank.models.sequence import SequenceConfig, SequenceRecommender, export_sequence_model, item_sequences

N_ITEMS = 40


def shop(n_users: int = 600, seed: int = 0) -> pd.DataFrame:
    """Each shopper walks the catalogue in order from a random start (i, i+1, i+2, ...): the next item
    follows from the last one, and popularity says nothing about it."""
    rng = np.random.default_rng(seed)
    rows = []
    start_time = pd.Timestamp("2026-01-01", tz="UTC")
    for u in range(n_users):
        first, length = rng.integers(N_ITEMS), rng.integers(4, 12)
        for step in range(length):
            rows.append({"user_id": f"u{u}", "item_id": f"i{(first + step) % N_ITEMS}",
                         "event_time": start_time + pd.Timedelta(hours=step), "session_id": None})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    config = SequenceConfig(max_len=12, dim=32, blocks=1, heads=2, negatives=16, epochs=15, batch_size=64,
                            learning_rate=5e-3, min_count=1)
    return SequenceRecommender(config).fit(shop())


def test_it_learns_what_comes_next_and_honours_exclusions(fitted):
    events = shop(200, seed=1)
    sequences = item_sequences(events)
    last = {u: seq[-1] for u, seq in sequences.items()}
    history = {u: set(seq[:-1]) for u, seq in sequences.items()}
    fitted.sequences.update({str(u): [fitted.index.get(i, 1) for i in seq[:-1]] for u, seq in sequences.items()})
    ranked = fitted.recommend(list(last), 10, exclude=history)
    assert all(not (set(ranked[u]) & history[u]) and len(ranked[u]) == 10 for u in last)
    metrics = evaluate_rankings(ranked, {u: [i] for u, i in last.items()}, (10,), n_items=N_ITEMS)
    assert metrics["hr@10"] > 0.8  # popularity would find it about 10/40 of the time


def test_remembered_shoppers_are_scored_from_their_own_history_without_training(fitted):
    events = shop(100, seed=2)
    events["user_id"] = "held-out-" + events["user_id"]
    weights = [w.copy() for w in fitted.model.get_weights()]
    fitted.remember(events)
    sequences = item_sequences(events)
    assert all(fitted.sequences[u] == [fitted.index.get(i, 1) for i in seq] for u, seq in sequences.items())
    assert all(np.array_equal(a, b) for a, b in zip(weights, fitted.model.get_weights(), strict=True))
    following = {u: [f"i{(int(seq[-1][1:]) + 1) % N_ITEMS}"] for u, seq in sequences.items()}
    metrics = evaluate_rankings(fitted.recommend(list(following), 5), following, (5,), n_items=N_ITEMS)
    assert metrics["hr@5"] > 0.8  # without the histories every shopper would get the same popular five


def test_pair_scores_rank_candidates_as_the_model_ranks_the_catalogue(fitted):
    history = {"h": ["i3", "i4", "i5"], "empty": []}
    catalogue = list(fitted.vocabulary)
    scores = fitted.pair_scores(["h"] * len(catalogue), catalogue, history)
    fitted.sequences["h"] = [fitted.index[i] for i in history["h"]]
    top = fitted.recommend(["h"], 5)["h"]
    assert [catalogue[j] for j in np.argsort(-scores, kind="stable")[:5]] == top
    unknown = fitted.pair_scores(["h", "empty", "nobody"], ["not-an-item", "i6", "i6"], history)
    assert unknown.tolist() == [0.0, 0.0, 0.0]  # no vocabulary entry, no history: no opinion


def test_an_unknown_user_gets_the_popular_items(fitted):
    assert fitted.recommend(["nobody"], 5)["nobody"] == fitted.popular[:5]


def test_the_export_answers_item_ids_from_item_ids(fitted, tmp_path):
    served = tf.saved_model.load(str(export_sequence_model(fitted, tmp_path / "sequence", top_n=5)))
    history = np.full((2, fitted.config.max_len), "", dtype=object)
    history[0, -3:] = ["i3", "i4", "i5"]
    history[1, -2:] = ["i30", "never-seen"]
    out = served.signatures["serving_default"](history=tf.constant(history))
    items = out["items"].numpy().astype(str)
    assert items.shape == (2, 5) and out["vector"].shape == (2, fitted.config.dim)
    assert items[0, 0] == "i6"
    assert not {"", "[OOV]"} & set(items.ravel())
    padded = [0] * (fitted.config.max_len - 3) + [fitted.index[i] for i in ("i3", "i4", "i5")]
    vectors = fitted.model(np.array([padded]))  # the same user through the Python path
    np.testing.assert_allclose(out["vector"].numpy()[0], vectors.numpy()[0, -1], rtol=1e-4, atol=1e-5)


def test_a_full_softmax_learns_the_order_too():
    config = SequenceConfig(max_len=12, dim=32, blocks=1, heads=2, negatives=0, epochs=10, batch_size=64,
                            learning_rate=5e-3, min_count=1)
    model = SequenceRecommender(config).fit(shop(400))
    model.sequences.update({"probe": [model.index[f"i{n}"] for n in (7, 8, 9)]})
    assert model.recommend(["probe"], 3, exclude={"probe": {"i7", "i8", "i9"}})["probe"][0] == "i10"


def test_the_exported_model_ranks_as_the_trained_one(fitted, tmp_path):
    """The blessing and the online path ask the SavedModel; it must rank as the model that was trained."""
    from shoprank.models.sequence import ExportedSequenceModel

    events = shop(50, seed=2)
    exported = ExportedSequenceModel(export_sequence_model(fitted, tmp_path / "s", top_n=10)).fit(events)
    users = sorted(exported.sequences)
    fitted.sequences.update({u: [fitted.index.get(i, 1) for i in seq] for u, seq in exported.sequences.items()})
    assert exported.recommend(users, 10) == fitted.recommend(users, 10)
    assert exported.max_len == fitted.config.max_len


def test_recent_first_purchases_weigh_more_when_asked():
    """Each predicted position weighs 0.5 ** (age of its target / half-life), aligned with the targets."""
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    events = pd.DataFrame({"user_id": ["u"] * 3 + ["v"] * 2, "item_id": ["a", "b", "c", "a", "c"],
                           "event_time": [t0, t0 + pd.Timedelta(days=10), t0 + pd.Timedelta(days=20),
                                          t0, t0 + pd.Timedelta(days=10)]})
    config = SequenceConfig(max_len=4, dim=8, blocks=1, heads=1, negatives=2, epochs=1, min_count=1,
                            recency_half_life_days=10.0)
    model = SequenceRecommender(config).fit(events)
    from shoprank.models.sequence_input import first_purchases

    weights = model._recency_weights(first_purchases(events), ["u", "v"])
    np.testing.assert_allclose(weights, [[0, 0, 0.5, 1.0], [0, 0, 0, 0.5]])
