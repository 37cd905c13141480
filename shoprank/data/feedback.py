"""The contract of events that come back from the shop's front end (`POST /events`).

The canonical behaviour events (view, cart, purchase, search: `shoprank.data.schema`) plus what the
served lists did: `impression` (an item was shown at a position of a `/recommend` or `/search`
answer) and `click` (it was clicked there). Each event carries the client's `event_id`, which
makes a resend harmless (stored once).

Validation follows the gate's row checks (`shoprank/validation/suites.py`): the same required
fields, `price > 0`, `quantity > 0`, `event_time` not past the gate's clock-skew tolerance. An event
that breaks them is rejected on its own with the field and the reason; a field the contract does not
know rejects the whole batch, since it means the client speaks another version of the contract.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from shoprank.data.schema import EVENT_TYPES, EVENTS

FEEDBACK_TYPES: tuple[str, ...] = ("impression", "click")
ALL_TYPES: tuple[str, ...] = (*EVENT_TYPES, *FEEDBACK_TYPES)
MAX_ID_CHARS = 128
MAX_QUERY_CHARS = 256  # the search API's limit (shoprank.search.MAX_QUERY_CHARS)
MAX_POSITION = 1000
FUTURE_TOLERANCE = timedelta(minutes=5)  # gate.toml future_tolerance_minutes
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

FIELDS: dict[str, str] = {
    "event_id": "the client's id of this event (resending it stores it once)",
    "event_type": "one of " + ", ".join(ALL_TYPES),
    "user_id": "the shopper's pseudonym: omit it with a shopper token (the token names the shopper); "
               "server-to-server callers name it (from the private zone's pseudonymiser, never a raw id)",
    "event_time": "ISO 8601 time with a zone (e.g. 2026-12-03T10:00:00Z) or Unix seconds",
    "item_id": "the item (every event but search)",
    "price": "unit price (> 0), optional",
    "quantity": "quantity (> 0), optional",
    "session_id": "the front end's session, optional",
    "query": "the search text (search events)",
    "request_id": "the request_id of the /recommend or /search answer that showed the item (impression, click)",
    "position": "where that answer showed the item, 1 = first (impression, click)",
}

#: What the log and the `served` source store: the canonical event columns plus the feedback ones.
FEEDBACK = pa.schema([
    *EVENTS,
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("request_id", pa.string()),
    pa.field("position", pa.int64()),
    pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
    # the pseudonymisation key `user_id` was made with; None only in rows logged before the API took
    # pseudonyms (raw ids, in the private store only): a reader tells the two apart by this column
    pa.field("user_key_id", pa.string()),
])

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rejection:
    """Why one event of a batch was not stored."""

    index: int
    event_id: str | None
    field: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"index": self.index, "event_id": self.event_id, "field": self.field, "reason": self.reason}


class UnknownFields(ValueError):
    """Events name fields the contract does not have: the whole batch is refused."""

    def __init__(self, found: dict[int, list[str]]) -> None:
        self.found = found
        first = next(iter(found))
        super().__init__(f"event {first} has field(s) {found[first]} the contract does not know "
                         f"({len(found)} event(s) in all); expected only: {', '.join(FIELDS)}")


def unknown_fields(events: list) -> dict[int, list[str]]:
    return {i: sorted(set(e) - set(FIELDS)) for i, e in enumerate(events)
            if isinstance(e, dict) and set(e) - set(FIELDS)}


def _text(event: dict, name: str, required: bool, limit: int = MAX_ID_CHARS) -> str | None:
    value = event.get(name)
    if value is None:
        if required:
            raise _Bad(name, "is required")
        return None
    if not isinstance(value, str):
        raise _Bad(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _Bad(name, "must not be blank")
    if len(value) > limit:
        raise _Bad(name, f"is {len(value)} characters, at most {limit} allowed")
    if name != "query" and _CONTROL.search(value):
        raise _Bad(name, "contains control characters")
    return value


def _positive(event: dict, name: str, integer: bool) -> float | int | None:
    value = event.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(name, f"must be a number, got {type(value).__name__}")
    if integer and (isinstance(value, float) and not value.is_integer()):
        raise _Bad(name, f"must be a whole number, got {value}")
    if not math.isfinite(value) or value <= 0:
        raise _Bad(name, f"must be > 0, got {value}")
    return int(value) if integer else float(value)


def parse_time(value: object) -> datetime:
    """An event time: ISO 8601 with a zone, or Unix seconds. Naive times are refused (whose clock?)."""
    if isinstance(value, bool) or value is None:
        raise _Bad("event_time", "is required")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _Bad("event_time", f"must be finite, got {value}")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Bad("event_time", f"{value} is not a time in Unix seconds") from None
    if not isinstance(value, str):
        raise _Bad("event_time", f"must be an ISO 8601 string or Unix seconds, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _Bad("event_time", f"{value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise _Bad("event_time", f"{value[:40]!r} has no time zone (add Z or +hh:mm)")
    return parsed.astimezone(UTC)


class _Bad(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = f"{field} {reason}"


def validate_event(event: object, index: int, now: datetime) -> dict | Rejection:
    """The event as a storable record, or why it is refused (first problem found)."""
    if not isinstance(event, dict):
        return Rejection(index, None, None, f"an event must be a JSON object, got {type(event).__name__}")
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    try:
        event_id = _text(event, "event_id", True)
        kind = event.get("event_type")
        if kind not in ALL_TYPES:
            raise _Bad("event_type", f"must be one of {', '.join(ALL_TYPES)}, got {str(kind)[:40]!r}")
        when = parse_time(event.get("event_time"))
        if when > now + FUTURE_TOLERANCE:
            raise _Bad("event_time", f"{when.isoformat()} is more than {FUTURE_TOLERANCE} in the future "
                                     f"(server time {now.isoformat(timespec='seconds')})")
        if when < EARLIEST:
            raise _Bad("event_time", f"{when.isoformat()} is before {EARLIEST.date()}")
        feedback = kind in FEEDBACK_TYPES
        record = {
            "event_id": event_id,
            "event_type": kind,
            "user_id": _text(event, "user_id", True),
            "event_time": when.timestamp(),
            "item_id": _text(event, "item_id", kind != "search"),
            "price": _positive(event, "price", integer=False),
            "quantity": _positive(event, "quantity", integer=True),
            "session_id": _text(event, "session_id", False),
            "query": _text(event, "query", kind == "search", MAX_QUERY_CHARS),
            "request_id": _text(event, "request_id", feedback),
            "position": _positive(event, "position", integer=True),
            "received_at": now.timestamp(),
        }
        if feedback and record["position"] is None:
            raise _Bad("position", f"is required on {kind} events")
        if record["position"] is not None and record["position"] > MAX_POSITION:
            raise _Bad("position", f"must be <= {MAX_POSITION}, got {record['position']}")
    except _Bad as bad:
        return Rejection(index, event_id, bad.field, bad.reason)
    return record
