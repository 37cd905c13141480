"""Server-to-server API keys: each caller has a name, scopes, and a key stored only as its hash.

Why hashed: the key file sits in the public zone next to the API; whoever reads it must not be able
to call the API. Keys are 32 random bytes, so a plain SHA-256 is enough (no password stretching:
there is nothing to guess). A key is shown once, when it is created; rotating means creating a new
one for the same caller and revoking the old one once the caller has switched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("read", "events:write", "events:purchase", "admin")
PREFIX = "srk_"  # recognisable in a leaked-secret scan


class InvalidKey(ValueError):
    """An API key that is unknown, revoked or malformed."""


@dataclass(frozen=True)
class Caller:
    name: str
    key_id: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The key file (JSON: key id -> caller, scopes, hash, created, revoked)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._entries = json.loads(self.path.read_text()) if self.path.exists() else {}
        self._by_digest = {e["sha256"]: (kid, e) for kid, e in self._entries.items() if not e.get("revoked")}

    def create(self, caller: str, scopes: list[str]) -> str:
        """A new key for `caller` with `scopes`; returns the key (shown once, stored as its hash)."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ValueError(f"scopes must be some of {list(SCOPES)}, got {scopes}")
        if not caller or len(caller) > 64:
            raise ValueError("a caller name is 1 to 64 characters")
        key = PREFIX + secrets.token_urlsafe(32)
        kid = secrets.token_hex(6)
        self._entries[kid] = {"caller": caller, "scopes": sorted(set(scopes)), "sha256": _digest(key),
                              "created": int(time.time()), "revoked": False}
        self._save()
        return key

    def revoke(self, key_id: str) -> None:
        if key_id not in self._entries:
            raise KeyError(f"no API key {key_id!r} in {self.path}")
        self._entries[key_id]["revoked"] = True
        self._save()

    def list(self) -> list[dict]:
        return [{"key_id": kid, **{k: v for k, v in e.items() if k != "sha256"}} for kid, e in self._entries.items()]

    def verify(self, key: str) -> Caller:
        if not key or not key.startswith(PREFIX) or len(key) > 128:
            raise InvalidKey("malformed API key")
        digest = _digest(key)
        found = self._by_digest.get(digest)
        # compare the digest found in constant time (the lookup itself only reveals a hash prefix bucket)
        if found is None or not hmac.compare_digest(found[1]["sha256"], digest):
            raise InvalidKey("unknown or revoked API key")
        kid, entry = found
        return Caller(entry["caller"], kid, frozenset(entry["scopes"]))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._by_digest = {e["sha256"]: (kid, e) for kid, e in self._entries.items() if not e.get("revoked")}
