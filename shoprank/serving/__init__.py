"""Serving: TF-Serving-compatible model server, its clients, candidates and the online API."""
