"""A shopper named by raw id, as the online path names them: their pseudonym under every key held.

Only the private zone can do this (it holds the pseudonymisation keys): the token issuer, and the
operator's tools that run there (`shoprank recommend USER_ID`, the demo)."""

from __future__ import annotations

from pathlib import Path

from shoprank.features.pseudonymise import load_keys, pseudonym


def subject_for(user_id: str, home: Path) -> dict[str, str]:
    """key id -> the shopper's pseudonym under that key."""
    return {key.id: pseudonym(user_id, key.secret) for key in load_keys(home)}
