"""Who is asking: the shopper's pseudonym, batch feature row and live session, read once per request.

`Shoppers` owns what that takes (the pseudonymisation keys, the Feast online store, the session
view); `UserContext` is what one request gets. Recommendations and search both read through it, so a
request costs one keyed hash, one user-row read and one session read, whichever route asks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from shoprank import clock
from shoprank.features import store as feast_store
from shoprank.features.definitions import KEY_RECORD, SESSION_VIEW
from shoprank.features.online import OnlineFeatures
from shoprank.features.pseudonymise import load_keys, pseudonym
from shoprank.features.session import SessionState, SessionStore, session_state
from shoprank.settings import Settings
from shoprank.storage import open_for


class FeatureStoreError(RuntimeError):
    """The online store could not be read; the message says which store and why."""


@dataclass(frozen=True)
class UserContext:
    """One request's shopper: `row` is None for a user the store does not know (or could not read,
    `store_error` then says why); `session` is empty when there is none."""

    user_id: str | None
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
        self.keys = load_keys(settings.home)
        self.key = self.keys[0].secret
        self._keyed_version: object | None = None
        self.online = OnlineFeatures(feast_store.feature_store(settings, read_timeout_s=settings.online_timeout_s))
        self.sessions = _session_store(self.online.fs, log)

    def select_key(self) -> str:
        """Serve with the key the online store was materialised with (its recorded id); say which."""
        try:
            record = json.loads(open_for(self.settings).get_bytes(KEY_RECORD))
        except (OSError, KeyError, ValueError):
            record = None
        if record is None:  # features written before keys had ids: the current key, as before
            self.key = self.keys[0].secret
            return self.keys[0].id
        matching = [k for k in self.keys if k.id == record["key_id"]]
        if not matching:
            raise FeatureStoreError(
                f"the online store was materialised with pseudonymisation key {record['key_id']}, and this "
                f"process holds keys {[k.id for k in self.keys]} ({', '.join(k.source for k in self.keys)}): "
                f"every user would be unknown. Mount the key the feature job used (during a rotation: as `next`)")
        self.key = matching[0].secret
        return matching[0].id

    def follow(self, materialisation: object) -> None:
        """A new materialisation (the item table reloaded) may bring a new key: re-read which, once."""
        if materialisation is not None and materialisation is not self._keyed_version:
            self.select_key()
            self._keyed_version = materialisation

    def user_key(self, user_id: str) -> str:
        """The user's pseudonym under the key the online store was materialised with."""
        return pseudonym(user_id, self.key)

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

    def context(self, user_id: str | None, tolerate_store_errors: bool = False) -> UserContext:
        """The shopper's row and session. A failed row read raises, or, with `tolerate_store_errors`
        (search, which answers unpersonalised), comes back as `store_error`."""
        if user_id is None:
            return UserContext(None, None, None, session_state(None, 0.0))
        key = self.user_key(user_id)
        try:
            row = self.row(key)
        except FeatureStoreError as err:
            if not tolerate_store_errors:
                raise
            return UserContext(user_id, key, None, session_state(None, 0.0), err)
        return UserContext(user_id, key, row, self.session(key))


def _session_store(fs, log: Callable[[str], None]) -> SessionStore | None:
    """The session view, when the registry has it (registries applied before it existed do not)."""
    try:
        return SessionStore(fs)
    except Exception as err:  # noqa: BLE001 - feast raises its own NotFound types per registry backend
        log(f"online path: no {SESSION_VIEW} feature view ({type(err).__name__}); serving without sessions")
        return None
