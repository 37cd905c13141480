"""The event intake behind `POST /events`, and the served-list log behind every answer.

A batch is checked event by event (`shoprank.data.feedback`); the good events are appended to the
durable log and fsync'd before the answer, so an acknowledged event survives a crash of the
process; then the sessions of the users they touch are pushed to the online store (`SessionPusher`:
one writer per process, concurrent batches merged into one push). The answer comes once the events
are durable; a client that recommends right after sending (read-your-writes) asks it to wait for the
push as well (`?sync=true`, up to a second). The push is a cache of the log: when it fails or is
slow the events are still stored (and a waiting answer says so).

Why not always wait: the push is most of a batch's cost (a read and a write of every user's row),
and batches that arrive while one push runs are merged into the next, so a pusher that nobody waits
on keeps up with far more events per second; how soon a pushed event is visible is measured by
`make bench-serving` (event-to-visible).

Who the events are for: every event names its shopper by pseudonym, never by raw id. With a
shopper token the token names them (an event's `user_id` may be left out, and must be the token's
if given); a server-to-server caller names them per event, and only the order system (scope
`events:purchase`) may post purchases. An impression or a click must name a `request_id` this API
signed for the same shopper (`shoprank.identity.request_ids`). What is stored holds the pseudonym
and the id of its key, the search text scrubbed, and the front end's session id keyed with the API's
own secret: the log is public-zone data.

Idempotency: an `event_id` already taken by this process (in the log since it started, or in a
segment not rolled yet) is answered as a duplicate and not stored again; the roll into parquet
drops repeats that reached another process, so what is stored holds each `event_id` once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from shoprank import clock
from shoprank.data.event_log import EventLog, Record, read_all
from shoprank.data.feedback import FEEDBACK_TYPES, Rejection, UnknownFields, unknown_fields, validate_event
from shoprank.data.search_log import scrub
from shoprank.data.served import RollHealth, roll, roll_health
from shoprank.features.session import PushedRows, SessionStore
from shoprank.locks import LockHeld
from shoprank.storage import ObjectStore

MAX_EVENTS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024
PSEUDONYM = re.compile(r"^[0-9a-f]{20}$")  # shoprank.features.pseudonymise.pseudonym's shape


@dataclass(frozen=True)
class EventCaller:
    """Who posts a batch, as the intake needs it: the token's shopper (`subject`, every pseudonym of
    theirs, the key id of `subject`) or a server-to-server caller who names shoppers per event."""

    subject: str | None = None
    pseudonyms: frozenset[str] = frozenset()
    key_id: str | None = None  # the pseudonymisation key of the pseudonyms stored
    may_purchase: bool = False
    check_request: Callable[[str, str], str | None] | None = None  # (request_id, subject) -> why not, or None
    session_secret: bytes = b""
    opted_out: Callable[[str], bool] = lambda pseudonym: False  # their events skip the live session
    forgotten: Callable[[str], bool] = lambda pseudonym: False  # erased: their events are refused

    def own(self, index: int, event: dict) -> dict | Rejection:
        """The event with its shopper filled in and checked, or why it is refused."""
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        named = event.get("user_id")
        if self.subject is not None:
            if named is not None and (not isinstance(named, str) or named not in self.pseudonyms):
                return Rejection(index, event_id, "user_id", "user_id is not the shopper of the token (leave it "
                                                             "out: the token names the shopper)")
            event = {**event, "user_id": self.subject}
        elif not isinstance(named, str) or not PSEUDONYM.match(named):
            return Rejection(index, event_id, "user_id", "user_id must be a shopper's pseudonym (20 lowercase hex "
                                                         "characters, from the private zone's pseudonymiser); raw "
                                                         "ids are refused")
        elif self.forgotten(named):
            return Rejection(index, event_id, "user_id", "this shopper was forgotten (erased): their events are not "
                                                         "taken")
        if event.get("event_type") == "purchase" and not self.may_purchase:
            return Rejection(index, event_id, "event_type", "purchases are taken from the order system only (an API "
                                                            "key with scope events:purchase)")
        return event

    def finish(self, index: int, record: dict) -> dict | Rejection:
        """A valid record as it is stored: the request id checked, the query scrubbed, the session keyed."""
        if record["event_type"] in FEEDBACK_TYPES and self.check_request is not None:
            why = self.check_request(record["request_id"], record["user_id"])
            if why is not None:
                return Rejection(index, record["event_id"], "request_id", why)
        if record["query"] is not None:
            record["query"] = scrub(record["query"])
        if record["session_id"] is not None:
            record["session_id"] = hmac.new(self.session_secret, record["session_id"].encode(),
                                            hashlib.sha256).hexdigest()[:20]
        record["user_key_id"] = self.key_id
        return record


@dataclass
class IntakeResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    sessions_updated: int | None = None  # users whose session the push that carried the batch wrote (if waited)
    session_error: str | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": [r.as_dict() for r in self.rejected], "sessions_updated": self.sessions_updated,
                "session_error": self.session_error}


class SeenIds:
    """Event ids taken recently, in two generations so memory stays bounded (about 2 x `capacity`)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self.current: set[str] = set()
        self.previous: set[str] = set()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.current or event_id in self.previous

    def add(self, event_id: str) -> None:
        if len(self.current) >= self.capacity:
            self.previous, self.current = self.current, set()
        self.current.add(event_id)


class SessionPusher:
    """One thread per process pushes sessions: concurrent batches are merged into one push (one
    write to the online store, one read of the users' rows), never several writers at once.
    `submit` returns a future that is done once the events are visible online."""

    def __init__(self, sessions: SessionStore, log: Callable[[str], None] = print, max_pending: int = 200_000,
                 also: Sequence[PushedRows] = ()) -> None:
        self.sessions, self.say = sessions, log
        self.also = list(also)  # other rows the same events update (the impressions), pushed after the session
        self.max_pending = max_pending  # events waiting for a push; past it new ones skip the session
        self.dropped = 0
        self._pending: list[tuple[list[dict], Future]] = []
        self._pending_events = 0
        self._wake = threading.Condition()
        self._stopped = False
        threading.Thread(target=self._loop, name="session-push", daemon=True).start()

    def submit(self, events: list[dict]) -> Future:
        done: Future = Future()
        with self._wake:
            if self._stopped:
                done.set_exception(RuntimeError("the session pusher is stopped"))
                return done
            if self._pending_events + len(events) > self.max_pending:  # the store cannot keep up: the
                self.dropped += len(events)  # events are stored, their sessions are skipped, memory stays bounded
                done.set_exception(RuntimeError(f"the session pusher is {self._pending_events:,} events behind; "
                                                "these events are stored but skip the session"))
                return done
            self._pending.append((events, done))
            self._pending_events += len(events)
            self._wake.notify()
        return done

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopped:
                    self._wake.wait()
                if self._stopped and not self._pending:
                    return
                taken, self._pending, self._pending_events = self._pending, [], 0
            try:
                batch = [e for events, _ in taken for e in events]
                users = self.sessions.update(batch)
                for rows in self.also:
                    rows.update(batch)
            except Exception as err:  # noqa: BLE001 - each waiting request reports it; the events are stored
                for _, done in taken:
                    done.set_exception(err)
                continue
            for _, done in taken:
                done.set_result(users)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()


class EventIntake:
    def __init__(self, log_dir: str | Path, store: ObjectStore | None = None,
                 log: Callable[[str], None] = print, seen_capacity: int = 1_000_000,
                 segment_age_s: float = 60.0, session_wait_s: float = 1.0) -> None:
        self.log_dir = Path(log_dir)
        self.events = EventLog(self.log_dir, max_age_s=segment_age_s)
        self.store = store
        self.say = log
        self.seen = SeenIds(seen_capacity)
        self.pusher: SessionPusher | None = None
        self.store_key_id: Callable[[], str | None] = lambda: None
        self.erased: Callable[[], frozenset[str]] = frozenset  # forgotten shoppers' pseudonyms (never rolled)
        self.session_wait_s = session_wait_s
        self.roll_error: tuple[float, str] | None = None  # (when, what) of the last roll that failed
        self._lock = threading.Lock()  # ids are checked and taken atomically across request threads
        for read in read_all(self.log_dir, log=lambda _: None):  # ids of segments not rolled yet
            for record in read.records:
                if record.kind == "events":
                    for event in record.items:
                        self.seen.add(event["event_id"])

    def attach_sessions(self, sessions: SessionStore | None, key_id: Callable[[], str | None],
                        also: Sequence[PushedRows] = ()) -> None:
        """Once the online store is known (the recommender loaded), accepted events update sessions
        (and `also`: the impressions): those whose pseudonym is under the key the store was
        materialised with (`key_id()`)."""
        if self.pusher is not None:
            self.pusher.stop()
        self.store_key_id = key_id
        self.pusher = SessionPusher(sessions, self.say, also=also) if sessions is not None else None

    def accept(self, events: list, wait_for_session: bool = False, caller: EventCaller | None = None) -> IntakeResult:
        """Validate, store durably, hand the events to the session pusher; with `wait_for_session`, also
        wait (up to `session_wait_s`) until they are in the online store. Raises UnknownFields (the
        whole batch is refused). `caller` None: the events are taken as they are (scripts, tests of
        the log itself)."""
        unknown = unknown_fields(events)
        if unknown:
            raise UnknownFields(unknown)
        started = time.perf_counter()
        now = clock.now()
        rejected: list[Rejection] = []
        good: list[dict] = []
        for index, event in enumerate(events):
            owned = caller.own(index, event) if caller is not None and isinstance(event, dict) else event
            checked = owned if isinstance(owned, Rejection) else validate_event(owned, index, now)
            if caller is not None and not isinstance(checked, Rejection):
                checked = caller.finish(index, checked)
            if isinstance(checked, Rejection):
                rejected.append(checked)
            else:
                good.append(checked)
        validated = time.perf_counter()
        with self._lock:
            fresh, duplicates, batch_ids = [], 0, set()
            for event in good:
                if event["event_id"] in self.seen or event["event_id"] in batch_ids:
                    duplicates += 1
                    continue
                batch_ids.add(event["event_id"])
                fresh.append(event)
            if fresh:
                self.events.append(Record("events", fresh), durable=True)  # before the 2xx, and before
                for event in fresh:  # the ids count as taken: a failed write leaves them retryable
                    self.seen.add(event["event_id"])
        stored = time.perf_counter()
        result = IntakeResult(len(fresh), duplicates, rejected)
        store_key = self.store_key_id()
        live = [e for e in fresh if (store_key is None or e.get("user_key_id") in (store_key, None))
                and (caller is None or not caller.opted_out(e["user_id"]))]
        if live and self.pusher is not None:
            pushed = self.pusher.submit(live)
            try:
                if wait_for_session:
                    result.sessions_updated = pushed.result(timeout=self.session_wait_s)
            except FutureTimeout:
                result.session_error = f"the session push took over {self.session_wait_s} s; it goes on"
            except Exception as err:  # noqa: BLE001 - stored already; the session is a cache of the log
                result.session_error = f"{type(err).__name__}: {err}"
                self.say(f"event intake: session push failed (events are stored): {result.session_error}")
        result.stages_ms = {"validate_ms": (validated - started) * 1000, "log_ms": (stored - validated) * 1000,
                            "session_ms": (time.perf_counter() - stored) * 1000}
        return result

    def log_served(self, served: dict) -> None:
        """Record a served list under its request id (written through, not fsync'd: a lost served list
        costs one training example; the events that refer to it are the durable part)."""
        self.events.append(Record("served", [served]), durable=False)

    def maintain(self) -> None:
        """Close a segment that has been open long enough and roll closed segments into parquet
        (skipped while another process rolls)."""
        self.events.rotate_if_due()
        if self.store is None:
            return
        try:
            result = roll(self.log_dir, self.store, log=self.say, lock_wait_s=0.0, erased=self.erased())
        except LockHeld:
            return
        except Exception as err:
            self.roll_error = (time.time(), f"{type(err).__name__}: {err}")
            raise
        if result.failed or result.quarantined:  # a data error: the other segments rolled on
            self.roll_error = (time.time(), (result.failed + [f"quarantined {q}" for q in result.quarantined])[0])
        if result.segments:
            self.say(f"event log: rolled {result.segments} segment(s): {result.events} events, "
                     f"{result.requests} served lists, {result.duplicates} repeat(s) dropped")

    def roll_health(self) -> RollHealth | None:
        """The roll's state for /metrics (None without a store: nothing is rolled here)."""
        return roll_health(self.log_dir, self.store) if self.store is not None else None

    def start(self, interval_s: float = 10.0) -> EventIntake:
        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.maintain()
                except Exception as err:  # noqa: BLE001 - retried next round; segments stay on disk
                    self.say(f"event log: roll failed (segments kept, retried): {type(err).__name__}: {err}")

        threading.Thread(target=loop, name="event-log-roll", daemon=True).start()
        return self

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
        if self.pusher is not None:
            self.pusher.stop()
        self.events.close()
