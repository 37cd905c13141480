"""The durable event log and its roll into hourly parquet: torn tails, concurrent writers, a roll
that dies halfway, two processes rolling at once, repeats across segments."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.data.event_log import HEADER, MAGIC, EventLog, Record, closed_segments, read_segment, segments
from shoprank.data.served import read_served, roll
from shoprank.storage import LocalStore


def events(ids, at: float = 1_764_763_200.0) -> list[dict]:  # 2025-12-03 12:00 UTC
    minutes = [int(i) if str(i).isdigit() else 0 for i in ids]
    return [{"event_id": f"e{i}", "event_type": "view", "user_id": "u", "event_time": at + m * 60,
             "item_id": "i1", "price": None, "quantity": None, "session_id": None, "query": None,
             "request_id": None, "position": None, "received_at": at} for i, m in zip(ids, minutes, strict=True)]


def test_records_come_back_whole_and_a_torn_tail_is_dropped_with_its_reason(tmp_path):
    log = EventLog(tmp_path)
    log.append(Record("events", events([1, 2])))
    log.append(Record("served", [{"request_id": "r1"}]), durable=False)
    log.close()
    (path,) = segments(tmp_path)
    whole = path.read_bytes()
    assert [r.kind for r in read_segment(path).records] == ["events", "served"]
    payload = b'{"kind":"events","items":[{"event_id":"e9"'  # a record cut short by a kill mid-write
    with open(path, "ab") as fh:
        fh.write(HEADER.pack(MAGIC, len(payload) + 50, 0) + payload)
    read = read_segment(path)
    assert len(read.records) == 2 and read.valid_bytes == len(whole)
    assert "cut short" in read.torn
    path.write_bytes(whole[:-3])  # the last record's payload truncated
    read = read_segment(path)
    assert len(read.records) == 1 and "cut short" in read.torn
    path.write_bytes(whole[:-1] + bytes([whole[-1] ^ 0xFF]))  # a flipped byte: the CRC catches it
    assert "CRC" in read_segment(path).torn


def test_a_failed_write_leaves_no_half_record_and_later_appends_go_on(tmp_path, monkeypatch):
    log = EventLog(tmp_path)
    log.append(Record("events", events([1])))
    real_write = os.write
    calls = []

    def disk_full(fd, data):
        calls.append(1)
        if len(calls) == 1:
            real_write(fd, bytes(data[:10]))  # part of the record reached the file
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        log.append(Record("events", events([2])))
    log.append(Record("events", events([3])))
    log.close()
    reads = [read_segment(p) for p in segments(tmp_path)]
    assert [r.torn for r in reads] == [None, None]
    assert [e["event_id"] for r in reads for rec in r.records for e in rec.items] == ["e1", "e3"]


def test_threads_appending_at_once_lose_nothing(tmp_path):
    log = EventLog(tmp_path)
    threads = [threading.Thread(target=lambda n=n: [log.append(Record("events", events([f"{n}-{j}"])))
                                                   for j in range(50)]) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    ids = [e["event_id"] for p in segments(tmp_path) for r in read_segment(p).records for e in r.items]
    assert len(ids) == 400 and len(set(ids)) == 400


def test_an_open_segment_is_not_rolled_until_it_is_closed(tmp_path):
    log = EventLog(tmp_path)
    log.append(Record("events", events([1])))
    assert list(closed_segments(tmp_path)) == []  # held by its writer
    store = LocalStore(tmp_path / "store")
    assert roll(tmp_path, store).segments == 0
    log.rotate()
    result = roll(tmp_path, store)
    assert result.segments == 1 and result.events == 1 and segments(tmp_path) == []
    stored = read_served(store)
    assert stored["event_id"].tolist() == ["e1"]
    assert store.list("served/events") == ["served/events/date=2025-12-03/hour=12/events.parquet"]


def test_repeats_across_segments_are_stored_once_and_hours_are_merged(tmp_path):
    store = LocalStore(tmp_path / "store")
    for batch in ([1, 2, 70], [2, 3], [70, 71]):  # e70/e71 land in hour 13
        log = EventLog(tmp_path / "log")
        log.append(Record("events", events(batch)))
        log.close()
        roll(tmp_path / "log", store)
    stored = read_served(store)
    assert sorted(stored["event_id"]) == ["e1", "e2", "e3", "e70", "e71"]
    assert len(store.list("served/events")) == 2


def test_a_roll_that_dies_halfway_is_run_again_without_loss_or_repeats(tmp_path, monkeypatch):
    import shoprank.data.served as served

    log = EventLog(tmp_path / "log")
    log.append(Record("events", events([1, 70])))  # two hours: the second write fails
    log.close()
    store = LocalStore(tmp_path / "store")
    real = served.write_parquet
    calls = []

    def failing(store_, key, table):
        calls.append(key)
        if len(calls) == 2:
            raise OSError("disk full")
        real(store_, key, table)

    monkeypatch.setattr(served, "write_parquet", failing)
    with pytest.raises(OSError):
        roll(tmp_path / "log", store)
    assert len(segments(tmp_path / "log")) == 1  # kept: not everything it holds is stored
    monkeypatch.setattr(served, "write_parquet", real)
    assert roll(tmp_path / "log", store).segments == 1  # its first hour's part is simply written again
    assert sorted(read_served(store)["event_id"]) == ["e1", "e70"]
    assert sorted(pq.read_table(store.uri(k)).column("event_id").to_pylist()
                  for k in store.list("served/events")) == [["e1"], ["e70"]]


def test_the_current_hour_stays_in_parts_until_it_is_over_then_becomes_one_object(tmp_path):
    from shoprank.data.served import compact

    now = pd.Timestamp.now(tz="UTC")
    store = LocalStore(tmp_path / "store")
    for batch in (["a", "b"], ["b", "c"]):  # "b" reached two processes
        log = EventLog(tmp_path / "log")
        log.append(Record("events", [{**e, "event_time": now.timestamp()} for e in events(batch)]))
        log.close()
        roll(tmp_path / "log", store)
    keys = store.list("served/events")
    assert len(keys) == 2 and all("/part-seg-" in k for k in keys)
    assert sorted(read_served(store)["event_id"]) == ["ea", "eb", "ec"]  # readers see each id once
    assert compact(store, now + pd.Timedelta(hours=3)) == 1
    (key,) = store.list("served/events")
    assert key.endswith("/events.parquet")
    assert sorted(pq.read_table(store.uri(key)).column("event_id").to_pylist()) == ["ea", "eb", "ec"]


def _roll_in_process(log_dir: str, store_dir: str, queue) -> None:
    result = roll(log_dir, LocalStore(store_dir), lock_wait_s=60)
    queue.put(result.events)


def test_two_processes_rolling_at_once_store_everything_once(tmp_path):
    for n in range(6):
        log = EventLog(tmp_path / "log")
        log.append(Record("events", events([f"{n}{j}" for j in range(20)])))
        log.close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_roll_in_process, args=(str(tmp_path / "log"), str(tmp_path / "store"), queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert queue.get() + queue.get() == 120
    stored = read_served(LocalStore(tmp_path / "store"))
    assert len(stored) == 120 and stored["event_id"].is_unique
    assert isinstance(stored["event_time"].dtype, pd.DatetimeTZDtype)


def test_segments_are_private_to_the_process_that_writes_them(tmp_path):
    log = EventLog(tmp_path)
    log.append(Record("events", events([1])))
    (path,) = segments(tmp_path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # raw user ids: personal data
    assert Path(path).name.endswith(f"-{os.getpid()}.log")
    log.close()
