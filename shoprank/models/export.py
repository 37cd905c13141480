"""Export a Keras model as a TF Serving SavedModel with a named `serving_default` signature.

The signature takes one named tensor per model input and returns {"score": ...}, which is what
the REST `instances`/`inputs` formats and gRPC PredictRequest address by name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from shoprank.models import CARD_FILE, WARMUP_FILE

__all__ = ["CARD_FILE", "WARMUP_FILE", "export_saved_model", "input_specs"]


def input_specs(model: keras.Model) -> dict[str, tf.TensorSpec]:
    specs = {}
    for inp in model.inputs:
        name = inp.name.split(":")[0]
        specs[name] = tf.TensorSpec(shape=[None], dtype=tf.string if inp.dtype == "string" else tf.float32,
                                    name=name)
    return specs


def export_saved_model(model: keras.Model, export_dir: Path, card: dict | None = None) -> Path:
    """Write the SavedModel into a temp sibling and rename it into place (never half-written)."""
    export_dir = Path(export_dir)
    tmp = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    specs = input_specs(model)

    module = tf.Module()
    module.model = model

    @tf.function(input_signature=[specs])
    def serve(features):
        return {"score": module.model(features, training=False)}

    tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve.get_concrete_function()})
    if card is not None:
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    shutil.rmtree(export_dir, ignore_errors=True)
    tmp.rename(export_dir)
    return export_dir
