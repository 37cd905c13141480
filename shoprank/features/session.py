"""Session features: what a shopper viewed, carted and searched in the last 30 minutes.

Written by the event intake through the Feast push source (`SESSION_PUSH` into `user_session`), read
by the online path with the user's batch features. A push replaces the user's row, so the intake
merges: it reads the row, adds the new events, drops what is older than the window, and pushes the
result. The window is applied again when the row is read (`session_state`), so a row nobody has
touched for an hour says nothing, whatever the online store's TTL handling.

One definition for both sides: `merge_session` is what the intake writes and `session_state` what
the recommender reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from feast import FeatureStore
from feast.infra.provider import get_provider
from feast.protos.feast.types.Value_pb2 import DoubleList, StringList, Value
from feast.types import Array, Float64, String

from shoprank import clock
from shoprank.features.definitions import SESSION_SCHEMA, SESSION_VIEW, SESSION_WINDOW
from shoprank.features.online import entity_key, row_values
from shoprank.features.session_inputs import MAX_SESSION_ITEMS

SESSION_FIELDS = [f.name for f in SESSION_SCHEMA]
WINDOW_S = SESSION_WINDOW.total_seconds()


@dataclass(frozen=True)
class SessionState:
    viewed: list[str]  # newest first, distinct
    carted: list[str]
    last_query: str | None

    @property
    def items(self) -> list[str]:
        """Carted first (stronger intent), then viewed; distinct."""
        return list(dict.fromkeys([*self.carted, *self.viewed]))


def _recent(items: Iterable, times: Iterable, now: float) -> list[tuple[str, float]]:
    return [(i, float(t)) for i, t in zip(items or [], times or [], strict=False) if now - float(t) <= WINDOW_S]


def session_state(row: dict | None, now: float) -> SessionState:
    """The session as of `now`, from a `user_session` row (None: no session)."""
    if not row:
        return SessionState([], [], None)
    viewed = _recent(row.get("session_viewed"), row.get("session_viewed_at"), now)
    carted = _recent(row.get("session_carted"), row.get("session_carted_at"), now)
    at = row.get("session_last_query_at")
    query = row.get("session_last_query") if at is not None and now - float(at) <= WINDOW_S else None
    return SessionState([i for i, _ in viewed], [i for i, _ in carted], query)


def _add(current: list[tuple[str, float]], new: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Newest first, one entry per item (its newest time), at most MAX_SESSION_ITEMS."""
    newest: dict[str, float] = {}
    for item, at in [*new, *current]:
        if at > newest.get(item, float("-inf")):
            newest[item] = at
    return sorted(newest.items(), key=lambda pair: -pair[1])[:MAX_SESSION_ITEMS]


def merge_session(row: dict | None, events: list[dict], now: float) -> dict:
    """The `user_session` row after `events` (dicts with event_type, item_id, query, event_time in
    Unix seconds): older entries past the window dropped, newest first."""
    row = row or {}
    viewed = _recent(row.get("session_viewed"), row.get("session_viewed_at"), now)
    carted = _recent(row.get("session_carted"), row.get("session_carted_at"), now)
    query, query_at = row.get("session_last_query"), row.get("session_last_query_at")
    recent = [e for e in events if now - e["event_time"] <= WINDOW_S]
    viewed = _add(viewed, [(e["item_id"], e["event_time"]) for e in recent if e["event_type"] in ("view", "click")])
    carted = _add(carted, [(e["item_id"], e["event_time"]) for e in recent if e["event_type"] == "cart"])
    for e in recent:
        if e["event_type"] == "search" and (query_at is None or e["event_time"] >= float(query_at)):
            query, query_at = e["query"], e["event_time"]
    if query_at is not None and now - float(query_at) > WINDOW_S:
        query, query_at = None, None
    return {"session_viewed": [i for i, _ in viewed], "session_viewed_at": [t for _, t in viewed],
            "session_carted": [i for i, _ in carted], "session_carted_at": [t for _, t in carted],
            "session_last_query": query, "session_last_query_at": query_at}


SESSION_TYPES = ("view", "cart", "search", "click")


def _value(kind: str, value: object) -> Value:
    """A field as Feast's ValueProto, by its declared Feast type."""
    if value is None:
        return Value()
    if kind == str(Array(String)):
        return Value(string_list_val=StringList(val=list(value)))  # type: ignore[call-overload]
    if kind == str(Array(Float64)):
        return Value(double_list_val=DoubleList(val=[float(v) for v in value]))  # type: ignore[union-attr]
    if kind == str(String):
        return Value(string_val=str(value))
    return Value(double_val=float(value))  # type: ignore[arg-type]


class PushedRows(ABC):
    """Reads and writes the rows of a view the event intake pushes (per shopper, merged per batch).

    Writes take the path a push to the view's push source takes inside Feast (the provider's
    `online_write_batch` for the view), with the protos built here: `FeatureStore.push` re-reads the
    registry and converts a DataFrame through Arrow on every call, which cost more than the write
    itself (profiled: about two thirds of a push of a few hundred users). A subclass names the view,
    its schema, the event types it takes, how long an event counts, and how events merge into a row."""

    VIEW = SESSION_VIEW
    SCHEMA = SESSION_SCHEMA
    TYPES: tuple[str, ...] = ()
    WINDOW_S = WINDOW_S

    def __init__(self, fs: FeatureStore) -> None:
        self.fs = fs
        self.provider = get_provider(fs.config)
        self.view = fs.get_feature_view(self.VIEW)
        self.join_key = self.view.entity_columns[0].name
        self.fields = [f.name for f in self.SCHEMA]
        self.kinds = {f.name: str(f.dtype) for f in self.SCHEMA}

    @staticmethod
    @abstractmethod
    def merge(row: dict | None, events: list[dict], now: float) -> dict:
        """The user's row after `events` (oldest first) at `now`, from the row held (None: no row yet)."""

    def read(self, user_keys: list[str]) -> dict[str, dict | None]:
        rows = self.provider.online_read(config=self.fs.config, table=self.view,
                                         entity_keys=[entity_key(self.join_key, k) for k in user_keys],
                                         requested_features=list(self.fields))
        out = {key: row_values(values, self.fields) for key, (_, values) in zip(user_keys, rows, strict=True)}
        return {key: row if row and any(v is not None for v in row.values()) else None for key, row in out.items()}

    def update(self, events: list[dict], pseudonymise: Callable[[str], str] | None = None,
               now: float | None = None) -> int:
        """Merge a batch of accepted events into their users' rows and push them; the users touched.
        `user_id` is the row key as it is (the API's events hold pseudonyms), or what `pseudonymise`
        makes of it."""
        key_of = pseudonymise or (lambda user: user)
        now = now if now is not None else clock.now_s()
        by_user: dict[str, list[dict]] = {}
        for event in events:
            if event["event_type"] in self.TYPES and now - event["event_time"] <= self.WINDOW_S:
                by_user.setdefault(key_of(event["user_id"]), []).append(event)
        if not by_user:
            return 0
        keys = list(by_user)
        current = self.read(keys)
        stamp = datetime.fromtimestamp(now, UTC)
        rows = []
        for key in keys:
            merged = self.merge(current[key], by_user[key], now)
            rows.append((entity_key(self.join_key, key),
                         {name: _value(self.kinds[name], merged[name]) for name in self.fields}, stamp, None))
        self.provider.online_write_batch(config=self.fs.config, table=self.view, data=rows, progress=None)
        return len(keys)


class SessionStore(PushedRows):
    """The `user_session` rows: what a shopper viewed, carted and searched in the last 30 minutes."""

    TYPES = SESSION_TYPES
    merge = staticmethod(merge_session)
