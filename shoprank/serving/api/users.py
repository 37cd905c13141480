"""Who is asking: the shopper's pseudonym, batch feature row and live session, read once per request.

`Shoppers` owns what that takes (the online store, the session view, the id of the pseudonymisation
key the online store was materialised with); `UserContext` is what one request gets. The API never
sees a raw user id and holds no pseudonymisation key: a request names its shopper by pseudonyms (one
per key the token's issuer held, `Subject`), and the one under the materialised key is the row key.
Recommendations and search both read through it: one user-row read and one session read a request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from shoprank import clock
from shoprank.features import store as feast_store
from shoprank.features.definitions import KEY_RECORD
from shoprank.features.impressions import ImpressionStore, impression_counts
from shoprank.features.online import OnlineFeatures
from shoprank.features.session import SessionState, SessionStore, session_state
from shoprank.settings import Settings
from shoprank.storage import open_for

#: A shopper as a request names them: pseudonymisation key id -> their pseudonym under that key.
Subject = Mapping[str, str]
T = TypeVar("T", SessionStore, ImpressionStore)
ANY_KEY = "*"  # a pseudonym a server-to-server caller names: under whichever key the online store uses


class FeatureStoreError(RuntimeError):
    """The online store could not be read; the message says which store and why."""


@dataclass(frozen=True)
class UserContext:
    """One request's shopper: `key` is their pseudonym (None: anonymous); `row` is None for a user
    the store does not know (or could not read, `store_error` then says why); `session` is empty
    when there is none."""

    key: str | None
    row: dict | None
    session: SessionState
    store_error: FeatureStoreError | None = None

    @property
    def known(self) -> bool:
        """The batch features know this shopper (they bought something before the snapshot)."""
        return self.row is not None and self.row.get("user_n_purchases") is not None


class Shoppers:
    def __init__(self, settings: Settings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.key_id: str | None = None  # the materialised key's id (None: not recorded, features from before ids)
        self._keyed_version: object | None = None
        self.online = OnlineFeatures(feast_store.feature_store(settings, read_timeout_s=settings.online_timeout_s))
        self.sessions = _pushed(SessionStore, self.online.fs, log)
        self.impression_rows = _pushed(ImpressionStore, self.online.fs, log)

    def select_key(self) -> str | None:
        """Read which key the online store was materialised with (its id, from the key record)."""
        self.key_id = recorded_key_id(self.settings)
        return self.key_id

    def follow(self, materialisation: object) -> None:
        """A new materialisation (the item table reloaded) may bring a new key: re-read which, once."""
        if materialisation is not None and materialisation is not self._keyed_version:
            self.select_key()
            self._keyed_version = materialisation

    def user_key(self, subject: Subject | None) -> str | None:
        """The shopper's pseudonym under the key the online store was materialised with (None for an
        anonymous request, or a token made before a key rotation the store has moved past)."""
        if not subject:
            return None
        if self.key_id is None:  # no key record: the store's one key is whatever the issuer used
            return next(iter(subject.values()))
        return subject.get(self.key_id) or subject.get(ANY_KEY)

    def row(self, key: str) -> dict | None:
        try:
            return self.online.user_row(key)
        except Exception as err:  # sqlite3/redis errors: the store, not the request, is at fault
            raise FeatureStoreError(f"online store read failed: {type(err).__name__}: {err}") from err

    def session(self, key: str) -> SessionState:
        """The live session of the user with pseudonym `key` (empty when sessions are not registered or
        the read fails: a session is a bonus, its outage must not fail the answer)."""
        if self.sessions is None:
            return session_state(None, 0.0)
        try:
            row = self.sessions.read([key])[key]
        except Exception as err:  # noqa: BLE001 - the batch features still answer
            self.log(f"online path: session read failed: {type(err).__name__}: {err}")
            return session_state(None, 0.0)
        return session_state(row, clock.now_s())

    def impressions(self, key: str | None, days: float) -> dict[str, tuple[int, int]]:
        """Per item, (times shown, times clicked) to the shopper `key` in the last `days` days; empty
        when unknown or unreadable (suppression is a refinement: its outage must not fail the answer)."""
        if key is None or self.impression_rows is None:
            return {}
        try:
            row = self.impression_rows.read([key])[key]
        except Exception as err:  # noqa: BLE001 - the answer goes on without suppression
            self.log(f"online path: impression read failed: {type(err).__name__}: {err}")
            return {}
        return impression_counts(row, clock.now_s(), days)

    def context(self, subject: Subject | None, tolerate_store_errors: bool = False) -> UserContext:
        """The shopper's row and session. A failed row read raises, or, with `tolerate_store_errors`
        (search, which answers unpersonalised), comes back as `store_error`."""
        key = self.user_key(subject)
        if key is None:
            return UserContext(None, None, session_state(None, 0.0))
        try:
            row = self.row(key)
        except FeatureStoreError as err:
            if not tolerate_store_errors:
                raise
            return UserContext(key, None, session_state(None, 0.0), err)
        return UserContext(key, row, self.session(key))


def recorded_key_id(settings: Settings) -> str | None:
    """The id of the pseudonymisation key the online store was materialised with, from the key record
    the features step writes (None: no record, features from before key ids)."""
    try:
        record = json.loads(open_for(settings).get_bytes(KEY_RECORD))
    except (OSError, KeyError, ValueError):
        return None
    return record.get("key_id") if isinstance(record, dict) else None


def _pushed(kind: type[T], fs, log: Callable[[str], None]) -> T | None:
    """A pushed view's rows (sessions, impressions), when the registry has the view (registries applied
    before it existed do not)."""
    try:
        return kind(fs)
    except Exception as err:  # noqa: BLE001 - feast raises its own NotFound types per registry backend
        log(f"online path: no {kind.VIEW} feature view ({type(err).__name__}); serving without it")
        return None
