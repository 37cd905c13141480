"""Request ids that prove what was served to whom.

Why signed: an impression or a click names the `request_id` of the list it belongs to. Checking that
against the served-list log would need a shared lookup across every worker and pod; instead the id
carries its expiry and an HMAC over (id, expiry, subject), so any worker can tell, from the id
alone, that this list was served to this subject and is recent. A click for another shopper's list,
or for an id someone made up, is refused with the reason.

The secret is the public API's own (it never leaves the API's zone, and it is not the
pseudonymisation key: knowing it lets one forge request ids, not re-identify anyone).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

DEFAULT_TTL_S = 24 * 3600  # a click may come a day after the list was shown


class InvalidRequestId(ValueError):
    """A request id that is malformed, expired, or not one served to this subject."""


def _mac(secret: bytes, list_id: str, expires: int, subject: str) -> str:
    return hmac.new(secret, f"{list_id}.{expires}.{subject}".encode(), hashlib.sha256).hexdigest()[:32]


def issue(subject: str, secret: bytes, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    """A new request id for a list served to `subject` (a pseudonym, or "" for an anonymous one)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    list_id = uuid.uuid4().hex
    return f"{list_id}.{expires}.{_mac(secret, list_id, expires, subject)}"


def check(request_id: str, subject: str, secret: bytes, now: float | None = None) -> None:
    """Raise InvalidRequestId unless `request_id` was issued for `subject` and has not expired."""
    parts = request_id.split(".") if isinstance(request_id, str) else []
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 32 or len(parts[2]) != 32:
        raise InvalidRequestId("request_id is not one this API issued (expected <id>.<expiry>.<signature>)")
    list_id, expires, mac = parts[0], int(parts[1]), parts[2]
    if not hmac.compare_digest(mac, _mac(secret, list_id, expires, subject)):
        raise InvalidRequestId("request_id was not served to this shopper")
    if expires < (time.time() if now is None else now):
        raise InvalidRequestId("request_id has expired: the list was served too long ago")
