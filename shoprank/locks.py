"""Leased locks kept in the object store, so two processes on two machines (two Airflow workers, two
KFP pods, a data engineer's laptop) cannot run the same critical section at once.

A lock is one small object (`locks/<name>.json`) saying who holds it and until when. It is taken
and handed over only by conditional writes (`ObjectStore.put_if`: S3's `If-None-Match` /
`If-Match`, a `flock`ed compare-and-swap on a local folder), so of two contenders exactly one wins.
The holder renews the lease in the background while it works; a holder that died stops renewing,
and once its lease has run out the next contender takes the lock over. Releasing marks the object
free (again by a conditional write), so nobody ever deletes a lock another process just took.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from shoprank.layout import LOCKS_PREFIX
from shoprank.storage import ObjectStore

LOCK_PREFIX = LOCKS_PREFIX


class LockHeld(RuntimeError):
    """Someone else holds the lock; the message says who, since when and until when."""


@dataclass(frozen=True)
class LockState:
    owner: str
    purpose: str
    acquired: float
    expires: float
    released: bool = False

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.acquired))
        left = self.expires - time.time()
        lease = f"{left:.0f} s of lease left" if left > 0 else "lease expired"
        return f"{self.owner} ({self.purpose}) since {since} UTC, {lease}"


class StoreLock:
    """`with StoreLock(store, "nightly", "shoprank run"):` runs the block as the only holder."""

    def __init__(self, store: ObjectStore, name: str, purpose: str = "", lease_s: float = 300.0,
                 wait_s: float = 0.0, poll_s: float = 0.5) -> None:
        self.store = store
        self.key = f"{LOCK_PREFIX}/{name}.json"
        self.name = name
        self.purpose = purpose or name
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.token: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._mutex = threading.Lock()

    def _state(self, released: bool = False) -> bytes:
        now = time.time()
        return json.dumps(LockState(self.owner, self.purpose, now, now + self.lease_s, released).__dict__).encode()

    def current(self) -> LockState | None:
        found = self.store.read_versioned(self.key)
        return None if found is None else LockState(**json.loads(found[0]))

    def try_acquire(self) -> bool:
        found = self.store.read_versioned(self.key)
        if found is not None:
            state = LockState(**json.loads(found[0]))
            if not state.released and state.expires > time.time():
                return False
        token = self.store.put_if(self.key, self._state(), None if found is None else found[1])
        if token is None:
            return False  # another contender wrote first
        self.token = token
        return True

    def acquire(self) -> StoreLock:
        deadline = time.monotonic() + self.wait_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                held = self.current()
                raise LockHeld(f"lock {self.name!r} ({self.store.uri(self.key)}) is held by "
                               f"{held.describe() if held else 'another process'}; try again when it is done"
                               + (f" (waited {self.wait_s:.0f} s)" if self.wait_s else ""))
            time.sleep(self.poll_s)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lock-{self.name}", daemon=True)
        self._renewer.start()
        return self

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._mutex:
                if self.token is None:
                    return
                token = self.store.put_if(self.key, self._state(), self.token)
                if token is None:  # our lease ran out and someone took over: say so, stop renewing
                    self.lost = True
                    print(f"lock {self.name!r}: lease lost to {self.current()}", flush=True)
                    return
                self.token = token

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        with self._mutex:
            if self.token is not None and not self.lost:
                self.store.put_if(self.key, self._state(released=True), self.token)
            self.token = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def nightly_lock(store: ObjectStore, purpose: str, wait_s: float = 0.0) -> StoreLock:
    """The lock a night's pipeline holds while it rewrites the features, and publishing and the
    hourly refresh take too: one name and lease for every holder. Without waiting, a held lock
    raises LockHeld at once (the hourly tasks skip the hour)."""
    return StoreLock(store, "nightly", purpose, lease_s=300, wait_s=wait_s)
