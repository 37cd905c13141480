"""Retrieval two-tower: user tower x item tower, in-batch sampled softmax with logQ correction.

User tower: numeric user features (log1p + normalisation), the pooled embeddings of the user's
top items (their history, from the `user_top_items` Feast feature) and of their top categories.
Item tower: hashed item id, category, price band. Both towers end in L2-normalised vectors; the
score is their dot product / temperature. Training: each row is (user snapshot, an item the user
bought in the label window); the other items of the batch are the negatives, and log(q_j), the
item's share of the training positives, is subtracted from its logit (sampling-bias correction,
Yi et al. 2019), so popular items are not over-learnt as negatives. One code path: under
`train.distribution()` (MirroredStrategy + mixed precision on GPU, default strategy on CPU).

The exported artefacts: the user tower as a SavedModel (`serving_default`: user features ->
{"embedding"}) and the item embeddings (`item_embeddings.npy` + `item_ids.json`) for candidate
generation (brute-force dot product or any ANN index).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.models.card import ModelCard
from shoprank.models.train import distribution, dtype_policy
from shoprank.storage import replacing_dir

HISTORY = 50
N_CATEGORIES = 5
ID_BUCKETS = 50_000
CATEGORY_BUCKETS = 4_096
PRICE_BANDS = [0.0, 20, 40, 60, 100, 150, 250, 400, 700, 1200]
USER_NUMERIC = ["user_n_purchases", "user_n_baskets", "user_n_items", "user_days_since_last", "user_avg_price"]


@dataclass
class RetrievalConfig:
    embedding_dim: int = 32
    epochs: int = 2
    batch_size: int = 1024
    learning_rate: float = 3e-3
    temperature: float = 0.05
    seed: int = 0


def _pad(lists: pd.Series, width: int) -> np.ndarray:
    out = np.full((len(lists), width), "", dtype=object)
    for row, value in enumerate(lists.to_numpy()):
        vals = [] if value is None or (isinstance(value, float) and np.isnan(value)) else list(value)[:width]
        out[row, :len(vals)] = vals
    return out


def user_inputs(users: pd.DataFrame) -> dict[str, np.ndarray]:
    """User-tower inputs from user feature rows (the Feast `user_stats` view)."""
    out = {n: pd.to_numeric(users[n], errors="coerce").fillna(0.0).to_numpy(np.float32) if n in users
           else np.zeros(len(users), np.float32) for n in USER_NUMERIC}
    out["history"] = _pad(users["user_top_items"], HISTORY) if "user_top_items" in users else \
        np.full((len(users), HISTORY), "", dtype=object)
    out["categories"] = _pad(users["user_top_categories"], N_CATEGORIES) if "user_top_categories" in users else \
        np.full((len(users), N_CATEGORIES), "", dtype=object)
    return out


def item_inputs(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """Item-tower inputs from item feature rows (the Feast `item_stats` view)."""
    return {"item_id": items["item_id"].astype(str).to_numpy(dtype=object),
            "item_category": items["item_category"].fillna("").astype(str).to_numpy(dtype=object),
            "item_price": pd.to_numeric(items["item_price"], errors="coerce").fillna(0.0).to_numpy(np.float32)}


class _MaskedMean(keras.layers.Layer):
    def call(self, emb, ids):  # noqa: D102
        mask = tf.cast(tf.not_equal(ids, ""), emb.dtype)[..., None]
        return tf.reduce_sum(emb * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def build_towers(user_sample: dict[str, np.ndarray], dim: int) -> tuple[keras.Model, keras.Model]:
    item_id = keras.Input(shape=(), dtype="string", name="item_id")
    item_cat = keras.Input(shape=(), dtype="string", name="item_category")
    item_price = keras.Input(shape=(), dtype="float32", name="item_price")
    id_hash = keras.layers.Hashing(ID_BUCKETS, name="id_hash")
    cat_hash = keras.layers.Hashing(CATEGORY_BUCKETS, name="cat_hash")
    id_emb = keras.layers.Embedding(ID_BUCKETS, dim, name="id_embedding",
                                    embeddings_regularizer=keras.regularizers.l2(1e-6))
    cat_emb = keras.layers.Embedding(CATEGORY_BUCKETS, dim, name="cat_embedding")
    band = keras.layers.Discretization(bin_boundaries=PRICE_BANDS[1:], name="price_band")(item_price)
    band_emb = keras.layers.Embedding(len(PRICE_BANDS) + 1, 8, name="band_embedding")(band)
    item_x = keras.layers.Concatenate()([id_emb(id_hash(item_id)), cat_emb(cat_hash(item_cat)), band_emb])
    item_x = keras.layers.Dense(dim * 2, activation="relu")(item_x)
    item_vec = keras.layers.UnitNormalization(name="item_vec")(keras.layers.Dense(dim)(item_x))
    item_tower = keras.Model({"item_id": item_id, "item_category": item_cat, "item_price": item_price},
                             item_vec, name="item_tower")

    numeric = {n: keras.Input(shape=(), dtype="float32", name=n) for n in USER_NUMERIC}
    history = keras.Input(shape=(HISTORY,), dtype="string", name="history")
    categories = keras.Input(shape=(N_CATEGORIES,), dtype="string", name="categories")
    stacked = keras.layers.Concatenate()([keras.layers.Reshape((1,))(numeric[n]) for n in USER_NUMERIC])
    logged = keras.layers.Lambda(lambda t: tf.math.log1p(tf.maximum(t, 0.0)))(stacked)
    norm = keras.layers.Normalization()
    sample = np.stack([user_sample[n] for n in USER_NUMERIC], axis=1).astype("float32")
    norm.adapt(np.log1p(np.maximum(sample, 0.0)))
    hist = _MaskedMean()(id_emb(id_hash(history)), history)  # shared id embedding: history in item space
    cats = _MaskedMean()(cat_emb(cat_hash(categories)), categories)
    user_x = keras.layers.Concatenate()([norm(logged), hist, cats])
    user_x = keras.layers.Dense(dim * 2, activation="relu")(user_x)
    user_vec = keras.layers.UnitNormalization(name="user_vec")(keras.layers.Dense(dim)(user_x))
    user_tower = keras.Model({**numeric, "history": history, "categories": categories}, user_vec, name="user_tower")
    return user_tower, item_tower


class TwoTower(keras.Model):
    """Scores a batch of (user, positive item) rows against every item of the batch."""

    def __init__(self, user_tower: keras.Model, item_tower: keras.Model, temperature: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.user_tower, self.item_tower, self.temperature = user_tower, item_tower, temperature

    def call(self, inputs, training=False):  # noqa: D102
        u = tf.cast(self.user_tower({k: inputs[k] for k in self.user_tower.input}, training=training), "float32")
        v = tf.cast(self.item_tower({k: inputs[k] for k in self.item_tower.input}, training=training), "float32")
        logits = tf.matmul(u, v, transpose_b=True) / self.temperature - inputs["log_q"][None, :]
        # the same item twice in a batch is not a negative of itself
        ids = tf.strings.to_hash_bucket_fast(inputs["item_id"], 2**62)
        same = tf.equal(ids[:, None], ids[None, :])
        eye = tf.eye(tf.shape(logits)[0], dtype=tf.bool)
        return tf.where(same & ~eye, tf.constant(-1e9, logits.dtype), logits)


def _in_batch_loss(_y_true, logits):
    labels = tf.range(tf.shape(logits)[0])
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def retrieval_pairs(interactions: pd.DataFrame, user_stats: pd.DataFrame, item_stats: pd.DataFrame,
                    cutoffs: list[pd.Timestamp], label_days: int, users_at: dict | None = None) -> pd.DataFrame:
    """(user snapshot, bought item) rows: one per distinct item bought in [t, t + label_days)."""
    buys = interactions[interactions["event_type"] == "purchase"]
    frames = []
    for at in cutoffs:
        window = buys[(buys["event_time"] >= at) & (buys["event_time"] < at + pd.Timedelta(days=label_days))]
        pairs = window[["user_key", "item_id"]].drop_duplicates()
        if users_at is not None and at in users_at:
            pairs = pairs[pairs["user_key"].isin(set(users_at[at]))]
        pairs = pairs.assign(event_timestamp=at)
        frames.append(pairs)
    pairs = pd.concat(frames, ignore_index=True)
    pairs = pairs.merge(user_stats, on=["user_key", "event_timestamp"], how="inner")
    return pairs.merge(item_stats, on=["item_id", "event_timestamp"], how="inner")


@dataclass
class RetrievalResult:
    user_tower: keras.Model
    item_tower: keras.Model
    history: dict[str, list[float]]
    examples_per_second: float
    device: str


def train_retrieval(train: pd.DataFrame, validation: pd.DataFrame, config: RetrievalConfig,
                    log_dir: Path | None = None, verbose: int = 0) -> RetrievalResult:
    """Fit the two towers on (user, item) rows; early stopping on the validation in-batch loss."""

    keras.utils.set_random_seed(config.seed)
    strategy, device, policy = distribution()
    freq = train["item_id"].value_counts(normalize=True)

    def inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        x = {**user_inputs(frame), **item_inputs(frame)}
        x["log_q"] = np.log(frame["item_id"].map(freq).fillna(freq.min()).to_numpy(np.float32))
        return x

    x_train, x_val = inputs(train), inputs(validation)
    with dtype_policy(policy), strategy.scope():
        user_tower, item_tower = build_towers(x_train, config.embedding_dim)
        model = TwoTower(user_tower, item_tower, config.temperature)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=_in_batch_loss)
    callbacks: list = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    started = time.perf_counter()
    def dataset(x: dict[str, np.ndarray], shuffle: bool) -> tf.data.Dataset:
        tensors = _tensors(x)
        n = len(x["item_id"])
        ds = tf.data.Dataset.from_tensor_slices((tensors, tf.zeros(n)))
        if shuffle:
            ds = ds.shuffle(min(n, 200_000), seed=config.seed, reshuffle_each_iteration=True)
        return ds.batch(config.batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)

    fit = model.fit(dataset(x_train, True), epochs=config.epochs, validation_data=dataset(x_val, False),
                    callbacks=callbacks, verbose=verbose)
    elapsed = time.perf_counter() - started
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return RetrievalResult(user_tower, item_tower, history, len(history["loss"]) * len(train) / max(elapsed, 1e-9),
                           device)


def item_embeddings(item_tower: keras.Model, items: pd.DataFrame) -> np.ndarray:
    x = item_inputs(items)
    parts = [np.asarray(item_tower(_tensors({k: v[s:s + 8192] for k, v in x.items()}), training=False),
                        dtype=np.float32) for s in range(0, len(items), 8192)]
    return np.concatenate(parts) if parts else np.zeros((0, item_tower.output.shape[-1]), np.float32)


def _tensors(x: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    return {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in x.items()}


def retrieve(user_tower: keras.Model, users: pd.DataFrame, item_ids: np.ndarray, item_vecs: np.ndarray,
             k: int, exclude: dict | None = None) -> dict[str, list[str]]:
    """Top-k items per user row by dot product (brute force over the catalogue)."""
    out: dict[str, list[str]] = {}
    keys = users["user_key"].astype(str).to_numpy()
    for start in range(0, len(users), 4096):
        batch = users.iloc[start:start + 4096]
        u = np.asarray(user_tower(_tensors(user_inputs(batch)), training=False), dtype=np.float32)
        scores = u @ item_vecs.T
        extra = k + 100 if exclude else k
        top = np.argpartition(-scores, min(extra, scores.shape[1] - 1), axis=1)[:, :extra]
        for row, cols in enumerate(top):
            cols = cols[np.argsort(-scores[row, cols], kind="stable")]
            user = keys[start + row]
            ranked = item_ids[cols].tolist()
            if exclude:
                ban = exclude.get(user, set())
                ranked = [i for i in ranked if i not in ban]
            out[user] = ranked[:k]
    return out


def export_retrieval(result: RetrievalResult, items: pd.DataFrame, export_dir: Path,
                     card: ModelCard | None = None) -> Path:
    """The user tower as a SavedModel with `serving_default`, item embeddings beside it."""

    export_dir = Path(export_dir)
    specs = {n: tf.TensorSpec([None], tf.float32, name=n) for n in USER_NUMERIC}
    specs["history"] = tf.TensorSpec([None, HISTORY], tf.string, name="history")
    specs["categories"] = tf.TensorSpec([None, N_CATEGORIES], tf.string, name="categories")
    module = tf.Module()
    module.model = result.user_tower

    @tf.function(input_signature=[specs])
    def serve(features):
        return {"embedding": tf.cast(module.model(features, training=False), tf.float32)}

    with replacing_dir(export_dir) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve.get_concrete_function()})
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        np.save(extra / "item_embeddings.npy", item_embeddings(result.item_tower, items))
        (extra / "item_ids.json").write_text(json.dumps(items["item_id"].astype(str).tolist()))
        (card or ModelCard(model="retrieval", device=result.device, history=result.history)).write(tmp)
    return export_dir
