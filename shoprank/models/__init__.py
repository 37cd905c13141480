"""Keras models, the training loop and SavedModel export in TF Serving's layout."""

MODEL_NAME = "ranker"  # the served ranker's name under the model base path and in TF Serving
SEQUENCE_MODEL_NAME = "sequence"  # the sequence model's (a candidate source of the ranker)
CARD_FILE = "assets.extra/model_card.json"  # inside each version: what it was trained on and with
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving replays these before serving a version
