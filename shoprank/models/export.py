"""Export a Keras model as a TF Serving SavedModel with a named `serving_default` signature.

The signature takes one named tensor per model input and returns {"score": ...}, which is what
the REST `instances`/`inputs` formats and gRPC PredictRequest address by name.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from shoprank.models import CARD_FILE, WARMUP_FILE
from shoprank.models.card import ModelCard
from shoprank.storage import replacing_dir

__all__ = ["CARD_FILE", "WARMUP_FILE", "export_saved_model", "input_specs", "score_saved_model"]


def input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    specs = {}
    for inp in model.inputs:
        name = inp.name.split(":")[0]
        specs[name] = tf.TensorSpec(shape=[None], dtype=tf.string if inp.dtype == "string" else tf.float32,
                                    name=name)
    return specs


def export_saved_model(model: keras.Model, export_dir: Path, card: ModelCard | None = None) -> Path:
    """Write the SavedModel, and its card, into a temp sibling and rename it into place (never half-written)."""
    export_dir = Path(export_dir)
    specs = input_specs(model)

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[specs])
    def serve(features):
        return {"score": module.model(features, training=False)}

    with replacing_dir(export_dir) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve.get_concrete_function()})
        if card is not None:
            card.write(tmp)
    return export_dir


def score_saved_model(model_dir: str, inputs: dict, batch_rows: int = 65_536):
    """The `score` of a SavedModel's serving signature for named input columns, in batches, each
    input cast to the signature's dtype (what the evaluate steps score a candidate and production with)."""
    import numpy as np

    fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    _, specs = fn.structured_input_signature
    size = len(next(iter(inputs.values()))) if inputs else 0
    scores = []
    for start in range(0, size, batch_rows):
        batch = {k: tf.constant(inputs[k][start:start + batch_rows], dtype=specs[k].dtype) for k in specs}
        scores.append(fn(**batch)["score"].numpy())
    return np.concatenate(scores) if scores else np.zeros(0)
