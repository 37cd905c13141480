"""Shoppers' privacy choices as every API process sees them: who opted out of personalisation, who
was forgotten, and the erasure requests an admin queues.

Why the store, one object per pseudonym: every worker of every pod must agree within a minute, and
the nightly's public steps read the same opt-outs to keep those shoppers out of personal features.
An object per shopper makes opting out and back in idempotent and race-free (no shared list to
rewrite), and each process re-reads the prefix every `privacy_poll_s` seconds; the process that took
a change applies it at once. The erased list is written by the private zone's erasure; a token whose
subject is on it is refused.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from shoprank.features.choices import erased, opted_out
from shoprank.layout import ERASED_PREFIX, ERASURE_REQUESTS_PREFIX, OPT_OUT_PREFIX
from shoprank.storage import ObjectStore


def _key(prefix: str, pseudonym: str) -> str:
    return f"{prefix}/{pseudonym}.json"


class PrivacyLists:
    def __init__(self, store: ObjectStore, poll_s: float = 10.0, log: Callable[[str], None] = print) -> None:
        self.store, self.poll_s, self.say = store, poll_s, log
        self.opted_out: frozenset[str] = frozenset()
        self.erased: frozenset[str] = frozenset()
        self.last_error: str | None = "not read yet"
        self.read_at = 0.0
        self._stop = threading.Event()
        # a refresh and this process's own changes one at a time: a refresh that listed the store
        # before a change was written must not undo it when it lands
        self._writing = threading.Lock()

    def refresh(self) -> None:
        """Re-read both lists; on a failure keep the last ones (and say so)."""
        try:
            with self._writing:
                self.opted_out = frozenset(opted_out(self.store))
                self.erased = frozenset(erased(self.store))
            self.last_error, self.read_at = None, time.time()
        except Exception as err:  # noqa: BLE001 - the store unreachable: the last lists stay in force
            self.last_error = f"{type(err).__name__}: {err}"
            self.say(f"online API: privacy lists not refreshed (the last ones stay in force): {self.last_error}")

    def start(self) -> PrivacyLists:
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.refresh()

        threading.Thread(target=loop, name="privacy-lists", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def is_opted_out(self, pseudonyms: Iterable[str]) -> bool:
        return any(p in self.opted_out for p in pseudonyms)

    def is_erased(self, pseudonyms: Iterable[str]) -> bool:
        return any(p in self.erased for p in pseudonyms)

    def opt_out(self, pseudonyms: Iterable[tuple[str, str]]) -> None:
        """Opt a shopper out under each of their pseudonyms ((key id, pseudonym) pairs: during a key
        rotation a caller may name them by either)."""
        pairs = list(pseudonyms)
        with self._writing:
            for key_id, pseudonym in pairs:
                self.store.put_bytes(_key(OPT_OUT_PREFIX, pseudonym),
                                     json.dumps({"key_id": key_id, "at": int(time.time())}).encode())
            self.opted_out = self.opted_out | {p for _, p in pairs}

    def opt_in(self, pseudonyms: Iterable[str]) -> None:
        names = set(pseudonyms)
        with self._writing:
            for pseudonym in names:
                self.store.delete_prefix(_key(OPT_OUT_PREFIX, pseudonym))
            self.opted_out = self.opted_out - names

    def queue_erasure(self, pseudonym: str, key_id: str | None, requested_by: str) -> str:
        """Queue an erasure for the private zone (it holds the key that resolves the pseudonym to the
        shopper); the request's id."""
        request_id = uuid.uuid4().hex
        # on the erased list at once: their tokens stop working and their logged events are dropped
        # within a refresh, before the private zone has resolved and erased the rest
        with self._writing:
            self.store.put_bytes(f"{ERASED_PREFIX}/{pseudonym}.json", json.dumps({"erasure_id": request_id}).encode())
            self.erased = self.erased | {pseudonym}
        self.store.put_bytes(f"{ERASURE_REQUESTS_PREFIX}/{request_id}.json", json.dumps(
            {"request_id": request_id, "pseudonym": pseudonym, "key_id": key_id, "requested_by": requested_by,
             "requested_at": int(time.time())}).encode())
        return request_id
