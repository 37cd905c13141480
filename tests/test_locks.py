"""Leased locks in the object store (local folder and a real S3 API): one holder at a time across
processes, a clear error naming the holder, waiting, and takeover after a holder died."""

import multiprocessing
import time

import pytest

from shoprank.locks import LockHeld, StoreLock
from shoprank.storage import open_store


@pytest.fixture(params=["local", "s3"])
def store_root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store"), None
    return request.getfixturevalue("s3_bucket")


def _count_under_lock(root: str, endpoint: str | None, rounds: int) -> None:
    store = open_store(root, endpoint)
    for _ in range(rounds):
        with StoreLock(store, "counter", "test", lease_s=30, wait_s=60, poll_s=0.01):
            value = int(store.get_bytes("counter")) if store.exists("counter") else 0
            time.sleep(0.002)  # widen the read-modify-write window
            store.put_bytes("counter", str(value + 1).encode())


def test_one_holder_at_a_time_across_processes(store_root):
    root, endpoint = store_root
    workers = [multiprocessing.get_context("spawn").Process(target=_count_under_lock, args=(root, endpoint, 15))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
        assert worker.exitcode == 0
    assert int(open_store(root, endpoint).get_bytes("counter")) == 45  # no increment lost


def test_a_held_lock_is_a_clear_error_then_free_after_release(store_root):
    store = open_store(*store_root)
    first = StoreLock(store, "nightly", "shoprank run 2001-03-01").acquire()
    with pytest.raises(LockHeld, match=r"lock 'nightly' .* is held by .*shoprank run 2001-03-01.* since .* UTC"):
        StoreLock(store, "nightly", "another run").acquire()
    first.release()
    with StoreLock(store, "nightly", "another run") as second:
        assert second.current().owner == second.owner


def test_waiting_for_the_holder(store_root):
    store = open_store(*store_root)
    first = StoreLock(store, "push", lease_s=30).acquire()
    started = time.monotonic()
    waiter = multiprocessing.get_context("spawn").Process(target=_count_under_lock, args=(*store_root, 1))
    waiter.start()
    time.sleep(1.0)
    first.release()
    waiter.join(60)
    assert waiter.exitcode == 0 and time.monotonic() - started >= 1.0


def test_a_dead_holders_lease_runs_out_and_the_lock_is_taken_over(store_root):
    store = open_store(*store_root)
    dead = StoreLock(store, "nightly", "a run that crashed", lease_s=1.0).acquire()
    dead._stop.set()  # the holder dies: nobody renews, nobody releases
    with pytest.raises(LockHeld):
        StoreLock(store, "nightly").acquire()
    time.sleep(1.2)
    with StoreLock(store, "nightly", "the next run") as taker:
        assert taker.current().purpose == "the next run"
        dead.release()  # a late release by the dead holder must not free the lock the taker holds
        assert taker.current().owner == taker.owner and not taker.current().released
        with pytest.raises(LockHeld, match="the next run"):
            StoreLock(store, "nightly").acquire()


def test_a_live_holder_keeps_its_lease(store_root):
    store = open_store(*store_root)
    with StoreLock(store, "long", "a long night", lease_s=0.6):
        time.sleep(1.5)  # longer than the lease: the renewer keeps it
        with pytest.raises(LockHeld, match="a long night"):
            StoreLock(store, "long").acquire()
