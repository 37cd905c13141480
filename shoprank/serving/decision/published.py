"""Rule sets under the store: published whole with an audit record, served hot.

Why like a model: a merchandiser's change must reach every API replica within seconds and without a
restart, and a bad change must never replace a good one. Publishing parses the text first (a bad
set is refused before the store changes) and writes with a compare-and-swap, so two merchandisers
saving at once cannot silently overwrite each other; every change leaves an audit record (who,
when, which version replaced which, the text's digest). Replicas hold a `LiveRules` and refresh it:
a set that no longer parses (edited behind the API's back) is refused there too, with its error
kept for the health page, and the previous set goes on serving.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from shoprank.serving.decision.rules import RulesError, RuleSet, parse_rules
from shoprank.storage import ObjectStore

__all__ = ["LiveRules", "PublishConflict", "audit_log", "publish_rules"]


class PublishConflict(RuntimeError):
    """Someone else published since the version this change was based on."""


@dataclass(frozen=True)
class _Stored:
    rules: RuleSet
    token: str


def publish_rules(store: ObjectStore, key: str, audit_prefix: str, text: str, who: str, now: datetime,
                  based_on: str | None = None) -> RuleSet:
    """Check `text` and make it the served rule set at `key`; its audit record goes under
    `audit_prefix`. `based_on`: the version the editor started from (None: whatever is there now);
    a different version there raises `PublishConflict` and writes nothing. A malformed set raises
    `RulesError` and writes nothing."""
    rules = parse_rules(text, store.uri(key))
    current = store.read_versioned(key)
    previous = None
    if current is not None:
        try:
            previous = parse_rules(current[0].decode(), store.uri(key)).version
        except (RulesError, UnicodeDecodeError):
            previous = "(unreadable)"
    if based_on is not None and previous != based_on:
        raise PublishConflict(f"{store.uri(key)} is at version {previous!r}, this change was made on {based_on!r}: "
                              f"reload and apply it again")
    if store.put_if(key, text.encode(), current[1] if current else None) is None:
        raise PublishConflict(f"{store.uri(key)} changed while this change was being published: reload and retry")
    record = {"who": who, "when": now.isoformat(), "version": rules.version, "previous_version": previous,
              "sha256": hashlib.sha256(text.encode()).hexdigest()}
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    store.put_bytes(f"{audit_prefix.rstrip('/')}/{stamp}-{record['sha256'][:12]}.json", json.dumps(record).encode())
    return rules


def audit_log(store: ObjectStore, audit_prefix: str) -> list[dict]:
    """Every published change, oldest first."""
    return [json.loads(store.get_bytes(k)) for k in sorted(store.list(audit_prefix.rstrip("/") + "/"))
            if k.endswith(".json")]


class LiveRules:
    """The rule set a replica serves, refreshed from the store; no rules published: none apply."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._store, self._key = store, key
        self._held = _Stored(RuleSet(), "")
        self._refused = ""  # the version token last refused: not parsed again until it changes
        self.last_error: str | None = None

    @property
    def rules(self) -> RuleSet:
        return self._held.rules

    def refresh(self) -> bool:
        """Load the stored set if it changed; True if the served set changed. A set that does not
        parse leaves the served one in place and is reported in `last_error`."""
        current = self._store.read_versioned(self._key)
        if current is None or current[1] in (self._held.token, self._refused):
            return False
        try:
            rules = parse_rules(current[0].decode(), self._store.uri(self._key))
        except (RulesError, UnicodeDecodeError) as err:
            self.last_error = f"refused, still serving version {self._held.rules.version!r}: {err}"
            self._refused = current[1]
            return False
        self._held, self.last_error = _Stored(rules, current[1]), None
        return True
