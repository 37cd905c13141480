"""The events the online API took back (`POST /events`), as a source for the nightly pipeline.

Reads the hourly parquet that `shoprank.data.served.roll` writes into the object store. The
behaviour events (view, cart, purchase, search) become canonical events like any shop export's;
impressions and clicks are not canonical events (they describe our lists, not the shop) and are
read by the training set from the same store instead. The catalogue and users are the last ones the
gate accepted (the curated store): the front end sends behaviour, not the catalogue.

The API logs shoppers by pseudonym (`user_key_id` says under which key). The curated store keys
them by raw id, so the private stage passes `resolve` (`shoprank.features.identities.to_raw_ids`
with its keys); without one, pseudonymous rows are refused, never taken as raw ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from shoprank.data.curated import ITEMS_KEY, USERS_KEY, read_items
from shoprank.data.errors import InputError
from shoprank.data.schema import EVENT_TYPES, EVENTS, USERS
from shoprank.data.served import EVENTS_PREFIX, read_served
from shoprank.settings import load_settings
from shoprank.storage import ObjectStore, open_for, read_parquet


class ServedSource:
    name = "served"

    def __init__(self, path: str | Path | None = None, store: ObjectStore | None = None,
                 curated: ObjectStore | None = None,
                 resolve: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> None:
        """`path`: where the served parquet is (default: settings `served_root`, else the store);
        the catalogue comes from the store's curated/ (or `curated`)."""
        if store is None or curated is None:

            settings = load_settings()
            store = store or open_for(settings, "served", root=path)
            curated = curated or open_for(settings)
        self.store, self.curated = store, curated
        self.resolve = resolve
        self._frame: pd.DataFrame | None = None
        if not self.store.list(EVENTS_PREFIX):
            raise InputError(self.store.uri(EVENTS_PREFIX), "no served events yet",
                             expected="hourly parquet rolled from the API's event log (`shoprank events roll`)")

    def served_events(self) -> pd.DataFrame:
        """Every served event, shoppers by raw id (resolved once, then kept for `users`)."""
        if self._frame is None:
            frame = read_served(self.store, "events")
            if "user_key_id" in frame.columns and frame["user_key_id"].notna().any():
                if self.resolve is None:
                    raise InputError(self.store.uri(EVENTS_PREFIX), "served events name shoppers by pseudonym",
                                     expected="ingest through the private stage, which resolves pseudonyms "
                                              "(`shoprank.orchestration.private.stage`)")
                frame = self.resolve(frame)
            self._frame = frame
        return self._frame

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        frame = self.served_events()
        frame = frame[frame["event_type"].isin(EVENT_TYPES)]
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start:start + chunk_rows][EVENTS.names].reset_index(drop=True)

    def items(self) -> pd.DataFrame:
        if not self.curated.exists(ITEMS_KEY):
            raise InputError(self.curated.uri(ITEMS_KEY), "no accepted catalogue in the curated store",
                             expected="a night that ingested a shop export first")
        return read_items(self.curated)

    def users(self) -> pd.DataFrame:
        """The accepted users plus every shopper of the served events (the front end sends ids, not
        profiles: a shopper new today has no attributes, and is no unknown user to the gate)."""
        known = read_parquet(self.curated, USERS_KEY).to_pandas() if self.curated.exists(USERS_KEY) \
            else USERS.empty_table().to_pandas()
        seen = self.served_events()["user_id"].drop_duplicates()
        new = pd.DataFrame({"user_id": seen[~seen.isin(set(known["user_id"]))].to_numpy()})
        return pd.concat([known, new], ignore_index=True)[USERS.names]
