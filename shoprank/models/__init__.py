"""Keras models, the training loop and SavedModel export in TF Serving's layout."""
