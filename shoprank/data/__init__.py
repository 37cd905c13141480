"""Canonical data contract, source adapters and the curated event store."""
