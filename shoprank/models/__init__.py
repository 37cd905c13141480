"""Keras models, the training loop and SavedModel export in TF Serving's layout."""

MODEL_NAME = "ranker"  # the served ranker's name under the model base path and in TF Serving
