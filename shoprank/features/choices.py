"""Shoppers' privacy choices as the public side reads them: pseudonyms that opted out of
personalisation, and pseudonyms of the forgotten. One object per pseudonym under
`features/privacy/` (written by the API and by the private zone's erasure), so the API and the
feature steps read the same lists; an opted-out shopper gets no personal feature rows."""

from __future__ import annotations

import pandas as pd

from shoprank.layout import ERASED_PREFIX, OPT_OUT_PREFIX
from shoprank.storage import ObjectStore


def listed(store: ObjectStore, prefix: str) -> set[str]:
    """The pseudonyms with an object under `prefix`."""
    return {key.rsplit("/", 1)[-1].removesuffix(".json") for key in store.list(f"{prefix}/") if key.endswith(".json")}


def opted_out(store: ObjectStore) -> set[str]:
    return listed(store, OPT_OUT_PREFIX)


def erased(store: ObjectStore) -> set[str]:
    return listed(store, ERASED_PREFIX)


def without_choices(users: pd.DataFrame, excluded: set[str]) -> pd.DataFrame:
    """User feature rows without those of shoppers who opted out or were forgotten."""
    if not excluded or users.empty:
        return users
    return users[~users["user_key"].isin(excluded)]
