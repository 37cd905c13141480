"""A SASRec-style sequence model: a causal transformer over each shopper's item sequence.

Why: the ranker is weakest where the next item is new to the shopper (leave-last-out), which is what
sequence models with a cross-entropy over many items do best on in the recent literature (SASRec-CE,
Klenitskiy & Vasilev 2023; gSASRec, Petrov & Macdonald 2023). The sequence is each shopper's distinct
items in first-purchase order (`evaluation.protocols.interaction_sequences`' order), the last
`max_len` of them; every position learns to predict the next item.

The Keras way, as the ranker: `SequenceModel` overrides `compute_loss` and trains with `fit`. The loss
is a softmax cross-entropy over the true next item and `negatives` items drawn uniformly from the
vocabulary, shared by the batch (many-negative CE: a full softmax over every item of a shop costs
positions x items per batch). Items seen fewer than `min_count` times share the out-of-vocabulary row.

`SequenceRecommender` wraps it in the `Recommender` protocol (fit on events, recommend top-k with
exclusions), so the quality bench scores it with the baselines' code path; `export_sequence_model`
writes a SavedModel that takes item-id strings and answers each shopper's next items, their scores
and the shopper's vector.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.features.recommenders import Exclude
from shoprank.models.card import ModelCard
from shoprank.models.sequence_input import OOV, PAD, first_purchases, history_input, item_sequences, pad_left
from shoprank.models.train import distribution, dtype_policy
from shoprank.storage import replacing_dir


@dataclass
class SequenceConfig:
    max_len: int = 50
    dim: int = 64
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.2
    negatives: int = 1024  # 0: a full softmax over the vocabulary
    min_count: int = 2
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 0
    precision: str = "auto"
    # each predicted position weighs 0.5 ** (age of its target / half-life) at the end of the training
    # data: recent first purchases say more about the next ones than those of months ago (None: all 1)
    recency_half_life_days: float | None = None


@keras.saving.register_keras_serializable(package="shoprank")
class SequenceModel(keras.Model):
    """Item + position embeddings, `blocks` causal self-attention blocks; `call` gives a vector per position."""

    def __init__(self, n_items: int, config: SequenceConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.config = n_items, config
        self.items = keras.layers.Embedding(n_items, config.dim, name="item_embedding")
        self.positions = keras.layers.Embedding(config.max_len, config.dim, name="position_embedding")
        self.drop = keras.layers.Dropout(config.dropout)
        self.attention = [keras.layers.MultiHeadAttention(config.heads, config.dim // config.heads,
                                                          dropout=config.dropout) for _ in range(config.blocks)]
        self.feed = [keras.Sequential([keras.layers.Dense(config.dim, activation="gelu"),
                                       keras.layers.Dropout(config.dropout), keras.layers.Dense(config.dim)])
                     for _ in range(config.blocks)]
        self.norms = [(keras.layers.LayerNormalization(epsilon=1e-6), keras.layers.LayerNormalization(epsilon=1e-6))
                      for _ in range(config.blocks)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6)

    def call(self, history, training=False):
        real = tf.not_equal(history, PAD)
        mask = tf.cast(real, self.compute_dtype)[..., None]
        keys = real[:, None, :] | tf.eye(tf.shape(history)[1], dtype=tf.bool)[None]  # padding is never attended to
        x = self.items(history) * (self.config.dim ** 0.5) + self.positions(tf.range(tf.shape(history)[1]))[None]
        x = self.drop(x, training=training) * mask
        for attention, feed, (norm_a, norm_f) in zip(self.attention, self.feed, self.norms, strict=True):
            q = norm_a(x)
            x = x + attention(q, x, attention_mask=keys, use_causal_mask=True, training=training)
            x = (x + feed(norm_f(x), training=training)) * mask
        return self.final_norm(x)

    def item_vectors(self) -> tf.Tensor:
        return self.items.embeddings

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        targets = tf.reshape(y, [-1])
        keep = tf.where(targets > PAD)[:, 0]
        weights = None if sample_weight is None else tf.gather(tf.reshape(tf.cast(sample_weight, tf.float32), [-1]),
                                                                keep)
        hidden = tf.cast(tf.gather(tf.reshape(y_pred, [-1, self.config.dim]), keep), tf.float32)
        positives = tf.gather(targets, keep)
        table = tf.cast(self.item_vectors(), tf.float32)
        if self.config.negatives <= 0:  # full softmax over every item (pad and OOV are never an answer)
            logits = tf.matmul(hidden, table, transpose_b=True)
            logits += tf.concat([tf.fill([2], -1e9), tf.zeros([self.n_items - 2])], axis=0)[None, :]
            return self._mean(tf.nn.sparse_softmax_cross_entropy_with_logits(positives, logits), weights)
        negatives = tf.random.uniform([self.config.negatives], 2, self.n_items, dtype=positives.dtype)
        positive_logit = tf.reduce_sum(hidden * tf.gather(table, positives), axis=-1, keepdims=True)
        negative_logits = tf.matmul(hidden, tf.gather(table, negatives), transpose_b=True)
        # a sampled negative that is the position's own target is no negative
        negative_logits += tf.cast(tf.equal(positives[:, None], negatives[None, :]), tf.float32) * -1e9
        logits = tf.concat([positive_logit, negative_logits], axis=1)
        return self._mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(positives), logits), weights)

    @staticmethod
    def _mean(losses: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
        """The (weighted) mean over the batch's predicted positions, per replica."""
        if weights is None:
            loss = tf.reduce_mean(losses)
        else:
            loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1e-9)
        return loss / tf.distribute.get_strategy().num_replicas_in_sync


@dataclass
class SequenceRecommender:
    """The sequence model as a `Recommender`: fit on events, top-k next items per user."""

    config: SequenceConfig = field(default_factory=SequenceConfig)
    name: str = "sequence"
    log: bool = False

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame | None = None) -> Self:
        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        first = first_purchases(train)
        sequences = first.groupby("user_id", sort=True)["item_id"].agg(list)
        counts = pd.Series([i for seq in sequences for i in seq]).value_counts()
        self.vocabulary = counts[counts >= cfg.min_count].index.astype(str).tolist()
        self.index = {item: j + 2 for j, item in enumerate(self.vocabulary)}
        self.popular = counts.index.astype(str).tolist()
        self.sequences = {str(u): [self.index.get(str(i), OOV) for i in seq] for u, seq in sequences.items()}
        usable = [u for u, s in self.sequences.items() if len(s) >= 2]
        inputs = pad_left([self.sequences[u][:-1] for u in usable], cfg.max_len)
        targets = pad_left([self.sequences[u][1:] for u in usable], cfg.max_len)
        targets[targets == OOV] = PAD  # the shared OOV row is no target worth learning
        weights = self._recency_weights(first, usable) if cfg.recency_half_life_days else None
        order = np.random.default_rng(cfg.seed).permutation(len(inputs))
        n_val = max(len(order) // 20, 1)
        val, fit = order[:n_val], order[n_val:]
        strategy, self.device, self.precision = distribution(cfg.precision)
        with dtype_policy(self.precision), strategy.scope():
            self.model = SequenceModel(len(self.vocabulary) + 2, cfg, name="sequence_model")
            self.model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate))
            self.model(inputs[:2])
        started = time.perf_counter()
        fitted = self.model.fit(
            inputs[fit], targets[fit], sample_weight=None if weights is None else weights[fit],
            validation_data=(inputs[val], targets[val]) if weights is None else (inputs[val], targets[val],
                                                                                  weights[val]),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size, shuffle=True, verbose=2 if self.log else 0,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                     restore_best_weights=True)])
        self.train_seconds = time.perf_counter() - started
        positions = int((targets[fit] > PAD).sum()) * len(fitted.history["loss"])
        self.examples_per_second = positions / max(self.train_seconds, 1e-9)  # predicted positions
        self.history = {k: [float(v) for v in vals] for k, vals in fitted.history.items()}
        return self

    def pair_scores(self, users: Sequence[str], items: Sequence[str], histories: dict[str, Sequence[str]],
                    chunk: int = 200_000) -> np.ndarray:
        """The model's score of each (user, item) row, from the user's given history (item ids, oldest
        first): the sequence model's opinion of a candidate, as a ranker input. 0 where the user has
        no history or the item is not in the vocabulary."""
        known = sorted({str(u) for u in users})
        row_of = {u: j for j, u in enumerate(known)}
        batch = pad_left([[self.index.get(str(i), OOV) for i in histories.get(u, [])] for u in known],
                         self.config.max_len)
        vectors = self.model.predict(batch, batch_size=1024, verbose=0)[:, -1, :].astype(np.float32)
        table = np.asarray(self.model.item_vectors(), dtype=np.float32)
        rows = np.fromiter((row_of[str(u)] for u in users), dtype=np.int64, count=len(users))
        cols = np.fromiter((self.index.get(str(i), PAD) for i in items), dtype=np.int64, count=len(items))
        scores = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            r, c = rows[start:start + chunk], cols[start:start + chunk]
            scores[start:start + chunk] = np.einsum("ij,ij->i", vectors[r], table[c])
        has_history = np.array([bool(histories.get(u)) for u in known])[rows]
        return np.where((cols > OOV) & has_history, scores, 0.0).astype(np.float32)

    def remember(self, events: pd.DataFrame) -> Self:
        """Take these users' first-purchase sequences as their histories, without training on them:
        held-out users are scored from their own past, as the online path scores any shopper."""
        for user, seq in first_purchases(events).groupby("user_id", sort=True)["item_id"].agg(list).items():
            self.sequences[str(user)] = [self.index.get(str(i), OOV) for i in seq]
        return self

    def _recency_weights(self, first: pd.DataFrame, users: list[str]) -> np.ndarray:
        """Per predicted position, 0.5 ** (its target's age at the end of the data / half-life)."""
        end = first["event_time"].max()
        ages = ((end - first["event_time"]).dt.total_seconds() / 86400.0).to_numpy()
        first = first.assign(weight=np.power(0.5, ages / float(self.config.recency_half_life_days)))
        by_user = first.groupby(first["user_id"].astype(str), sort=False)["weight"].agg(list)
        return pad_left([by_user[u][1:] for u in users], self.config.max_len, 0.0, np.float32)

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        """The last position's vector of each user's sequence (zeros where a user has none)."""
        batch = pad_left([self.sequences.get(str(u), []) for u in user_ids], self.config.max_len)
        return self.model.predict(batch, batch_size=1024, verbose=0)[:, -1, :].astype(np.float32)

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        table = np.asarray(self.model.item_vectors(), dtype=np.float32)
        out: dict[str, list[str]] = {}
        for start in range(0, len(user_ids), 2048):
            users = [str(u) for u in user_ids[start:start + 2048]]
            scores = self.user_vectors(users) @ table.T
            scores[:, :2] = -np.inf  # pad and OOV are no items
            wanted = k + max((len(exclude.get(u, ())) for u in users), default=0) if exclude else k
            top = np.argsort(-scores, axis=1)[:, :min(wanted, scores.shape[1] - 2)]
            for row, user in enumerate(users):
                banned = set(exclude.get(user, ())) if exclude else set()
                if not self.sequences.get(user):
                    ranked: list[str] = []
                else:
                    ranked = [self.vocabulary[j - 2] for j in top[row] if self.vocabulary[j - 2] not in banned][:k]
                for item in self.popular:  # fewer than k known items: the popular ones fill in
                    if len(ranked) >= k:
                        break
                    if item not in banned and item not in ranked:
                        ranked.append(item)
                out[user] = ranked
        return out


def export_sequence_model(recommender: SequenceRecommender, export_dir: Path, top_n: int = 100,
                          card: ModelCard | None = None) -> Path:
    """A SavedModel whose `serving_default` takes `history` (item ids, oldest first, padded with "" on
    the left to `max_len`) and returns the next `items` and their `scores`, and the shopper's `vector`."""
    export_dir = Path(export_dir)
    cfg = recommender.config
    vocabulary = tf.constant(["", "[OOV]", *recommender.vocabulary])
    indices = tf.range(2, len(recommender.vocabulary) + 2, dtype=tf.int64)
    lookup = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(vocabulary[2:], indices), default_value=OOV)
    module = tf.Module()
    module.model, module.lookup, module.vocabulary = recommender.model, lookup, vocabulary

    @tf.function(input_signature=[tf.TensorSpec([None, cfg.max_len], tf.string, name="history")])
    def serve(history):
        indices = tf.where(tf.equal(history, ""), tf.constant(PAD, tf.int64), module.lookup.lookup(history))
        hidden = tf.cast(module.model(tf.cast(indices, tf.int32), training=False)[:, -1, :], tf.float32)
        scores = tf.matmul(hidden, tf.cast(module.model.item_vectors(), tf.float32), transpose_b=True)
        scores = tf.concat([tf.fill([tf.shape(scores)[0], 2], float("-inf")), scores[:, 2:]], axis=1)
        top = tf.math.top_k(scores, k=min(top_n, len(recommender.vocabulary)))
        return {"items": tf.gather(module.vocabulary, top.indices), "scores": top.values, "vector": hidden}

    with replacing_dir(export_dir) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})
        (card or ModelCard(model="sequence", device=recommender.device, precision=recommender.precision,
                           history=recommender.history, parameters=vars(cfg))).write(tmp)
    return export_dir


class ExportedSequenceModel:
    """An exported sequence model, asked as the online path asks it: the blessing scores the candidate
    and production through this, so a version is judged by the SavedModel that would serve."""

    name = "sequence"

    def __init__(self, model_dir: str | Path) -> None:
        self.model = tf.saved_model.load(str(model_dir))
        self.serve = self.model.signatures["serving_default"]
        self.max_len = int(self.serve.structured_input_signature[1]["history"].shape[1])

    def next_items(self, histories: Sequence[Sequence[str]], batch: int = 1024) -> list[list[str]]:
        """Each history's next items, best first (the export's `top_n`)."""
        out: list[list[str]] = []
        for start in range(0, len(histories), batch):
            answer = self.serve(history=tf.constant(history_input(histories[start:start + batch], self.max_len)))
            out.extend([[i.decode() for i in row] for row in answer["items"].numpy()])
        return out

    def fit(self, train: pd.DataFrame) -> Self:
        """Read the histories from the events (the model itself was trained before)."""
        self.sequences = {str(u): s for u, s in item_sequences(train, last=self.max_len).items()}
        return self

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        users = [str(u) for u in user_ids]
        answers = self.next_items([[str(i) for i in self.sequences.get(u, [])] for u in users])
        out = {}
        for user, items in zip(users, answers, strict=True):
            banned = exclude.get(user, set()) if exclude else set()
            out[user] = [i for i in items if i not in banned][:k]
        return out
