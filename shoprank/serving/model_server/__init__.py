"""The TF-Serving-compatible model server (`shoprank serve-models`), its clients and the base path layout."""
