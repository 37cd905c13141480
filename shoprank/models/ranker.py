"""A DCN-v2 style ranking model over the ranker features.

Scaling lives inside the graph (log1p + a Normalization layer adapted on the training data, hashed
ids and categories), so the SavedModel takes raw feature values: the server needs no
preprocessing code of its own, and training/serving skew has nowhere to hide.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from shoprank.features.derived import NUMERIC_FEATURES, STRING_FEATURES

FeatureLists = tuple[Sequence[str], Sequence[str]]  # (numeric input names, string input names)
ID_BUCKETS = 50_000
CATEGORY_BUCKETS = 4_096


@keras.saving.register_keras_serializable(package="shoprank")
class CrossLayer(keras.layers.Layer):
    """One DCN-v2 cross: x0 * (W x + b) + x, explicit feature interactions of growing degree."""

    def build(self, input_shape):  # noqa: D102 - keras hook
        dim = input_shape[-1]
        self.dense = keras.layers.Dense(dim, kernel_initializer="glorot_uniform")
        self.dense.build(input_shape)

    def call(self, x0, x):  # noqa: D102 - keras hook
        return x0 * self.dense(x) + x


def build_ranker(numeric_sample: dict[str, np.ndarray], embedding_dim: int = 16, hidden: int = 64,
                 n_cross: int = 2, dropout: float = 0.1, features: FeatureLists | None = None) -> keras.Model:
    """The model; `numeric_sample` (training inputs) adapts the normalisation statistics. `features`
    (numeric, string input names) defaults to the recommender's; the search ranker passes its own."""
    numeric_names, string_names = features or (NUMERIC_FEATURES, STRING_FEATURES)
    numeric_inputs = {n: keras.Input(shape=(), name=n, dtype="float32") for n in numeric_names}
    string_inputs = {n: keras.Input(shape=(), name=n, dtype="string") for n in string_names}
    stacked = keras.layers.Concatenate()([keras.layers.Reshape((1,))(numeric_inputs[n]) for n in numeric_names])
    logged = keras.layers.Lambda(lambda t: tf.math.log1p(tf.maximum(t, 0.0)), name="log1p")(stacked)
    norm = keras.layers.Normalization(name="scale")
    sample = np.stack([numeric_sample[n] for n in numeric_names], axis=1).astype("float32")
    norm.adapt(np.log1p(np.maximum(sample, 0.0)))
    scaled = norm(logged)
    cat_hash = keras.layers.Hashing(CATEGORY_BUCKETS, name="category_hash")(string_inputs["item_category"])
    cat_emb = keras.layers.Embedding(CATEGORY_BUCKETS, embedding_dim // 2, name="category_embedding",
                                     embeddings_regularizer=keras.regularizers.l2(1e-5))(cat_hash)
    parts = [scaled, cat_emb]
    if "item_id" in string_inputs:  # an id input only if derived.STRING_FEATURES asks for it
        item_hash = keras.layers.Hashing(ID_BUCKETS, name="item_hash")(string_inputs["item_id"])
        parts.append(keras.layers.Embedding(ID_BUCKETS, embedding_dim, name="item_embedding",
                                            embeddings_regularizer=keras.regularizers.l2(1e-4))(item_hash))
    x0 = keras.layers.Concatenate()(parts)
    x = x0
    for _ in range(n_cross):
        x = CrossLayer()(x0, x)
    deep = keras.layers.Dense(hidden, activation="relu")(x0)
    deep = keras.layers.Dropout(dropout)(deep)
    deep = keras.layers.Dense(hidden // 2, activation="relu")(deep)
    logit = keras.layers.Dense(1, name="logit", dtype="float32")(keras.layers.Concatenate()([x, deep]))
    score = keras.layers.Activation("sigmoid", dtype="float32", name="score")(keras.layers.Reshape(())(logit))
    return keras.Model({**numeric_inputs, **string_inputs}, score, name="ranker")


POSITION_INPUT = "shown_position"  # training-set column: best position the item was shown at, 0 = not shown
MAX_BIAS_POSITION = 20


def logit_scorer(model: keras.Model) -> keras.Model:
    """The same ranker scoring with its logit instead of the sigmoid: for a pure ranking score (the
    search ranker's), where a listwise loss pushes the best items' logits past the point where the
    float32 sigmoid reads 1.0 and their order would be lost to ties."""
    logit = keras.layers.Reshape((), name="logit_score")(model.get_layer("logit").output)
    return keras.Model(model.inputs, logit, name=f"{model.name}_logit")
