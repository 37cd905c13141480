"""The two-tower model learns co-purchase structure, exports a user tower and item embeddings."""

import json

import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.models.card import ModelCard
from shoprank.models.retrieval import (
    HISTORY,
    RetrievalConfig,
    export_retrieval,
    item_embeddings,
    retrieve,
    train_retrieval,
)
from shoprank.models.train import TrainConfig
from shoprank.models.tuning import sample_configs


def _pairs(n: int, seed: int) -> pd.DataFrame:
    """Two taste groups: users with 'A' items in their history buy A items, 'B' users B items."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        group = "A" if k % 2 == 0 else "B"
        history = [f"{group}{i}" for i in rng.choice(20, 5, replace=False)]
        rows.append({"user_key": f"u{k}", "user_top_items": history, "user_top_categories": [group],
                     "user_n_purchases": 5, "user_n_baskets": 2, "user_n_items": 5, "user_days_since_last": 3.0,
                     "user_avg_price": 10.0, "item_id": f"{group}{rng.integers(20)}", "item_category": group,
                     "item_price": 10.0})
    return pd.DataFrame(rows)


def test_two_tower_learns_and_exports(tmp_path):
    result = train_retrieval(_pairs(1500, 0), _pairs(300, 1), RetrievalConfig(epochs=3, batch_size=64,
                                                                              embedding_dim=8, seed=1))
    assert result.device == "CPU" and result.examples_per_second > 0 and len(result.history["loss"]) >= 2
    catalogue = pd.DataFrame({"item_id": [f"{g}{i}" for g in "AB" for i in range(20)],
                              "item_category": [g for g in "AB" for _ in range(20)], "item_price": 10.0})
    vecs = item_embeddings(result.item_tower, catalogue)
    users = _pairs(40, 2)
    top = retrieve(result.user_tower, users, catalogue["item_id"].to_numpy(), vecs, 10)
    same_group = np.mean([item[0] == row.item_category for row in users.itertuples()
                          for item in top[row.user_key]])
    assert same_group > 0.8
    banned = retrieve(result.user_tower, users.head(2), catalogue["item_id"].to_numpy(), vecs, 10,
                      exclude={"u0": set(top["u0"][:3])})
    assert not set(top["u0"][:3]) & set(banned["u0"])
    out = export_retrieval(result, catalogue, tmp_path / "retrieval", ModelCard(model="retrieval"))
    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    _, specs = fn.structured_input_signature
    assert specs["history"].shape.as_list() == [None, HISTORY]
    assert np.load(out / "assets.extra/item_embeddings.npy").shape == (40, 8)
    assert json.loads((out / "assets.extra/item_ids.json").read_text())[0] == "A0"


def test_search_space_is_seeded_and_starts_with_the_base():
    base = TrainConfig(epochs=1)
    a, b = sample_configs(base, 4, seed=3), sample_configs(base, 4, seed=3)
    assert a == b and a[0] == base and len({repr(c) for c in a}) == 4
