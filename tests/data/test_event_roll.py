"""The roll from the event log into hourly parquet, whatever a segment holds: served lists of one
route only, events only, nulls and empty lists; a poison segment is quarantined and the others roll on;
what is exported is exactly what was acknowledged and served."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoprank.data import served
from shoprank.data.event_log import EventLog, Record, segments
from shoprank.data.records import RecordError, table_from_records
from shoprank.data.served import (
    QUARANTINE_AFTER,
    REQUESTS,
    export,
    quarantined,
    read_served,
    retry_quarantined,
    roll,
    roll_health,
)
from shoprank.storage import LocalStore

AT = 1_764_763_200.0  # 2025-12-03 12:00 UTC


def search_list(n: int, items: list[str] | None = None) -> dict:
    """What the API logs for a /search answer: no candidate fields at all."""
    items = ["i1", "i2"] if items is None else items
    return {"request_id": f"s{n}", "served_at": AT + n, "route": "search", "user_id": f"u{n % 3}",
            "query": "green tea", "model_version": None, "index_version": 1, "reason": "anonymous",
            "items": items, "scores": [1.0] * len(items), "sources": ["bm25"] * len(items)}


def recommend_list(n: int, items: list[str] | None = None) -> dict:
    items = ["i3", "i4"] if items is None else items
    return {"request_id": f"r{n}", "served_at": AT + n, "route": "recommend", "user_id": f"u{n % 3}",
            "model_version": 7, "reason": None, "items": items, "scores": [0.5] * len(items),
            "sources": ["own"] * len(items), "candidates": items + ["i9"], "candidate_scores": [0.5] * (len(items) + 1),
            "candidate_sources": ["own"] * (len(items) + 1)}


def event(n: int, **extra) -> dict:
    return {"event_id": f"e{n}", "event_type": "view", "user_id": f"u{n % 3}", "event_time": AT + n,
            "item_id": "i1", "received_at": AT + n, **extra}


def write_segment(folder, *records: Record) -> None:
    log = EventLog(folder)
    for record in records:
        log.append(record, durable=record.kind == "events")
    log.close()


@pytest.mark.parametrize("records, events, requests", [
    pytest.param([Record("served", [search_list(n) for n in range(5)])], 0, 5, id="search-lists-only"),
    pytest.param([Record("served", [recommend_list(n) for n in range(5)])], 0, 5, id="recommend-lists-only"),
    pytest.param([Record("events", [event(n) for n in range(5)])], 5, 0, id="events-only"),
    pytest.param([Record("served", [search_list(1), recommend_list(2)]), Record("events", [event(3)]),
                  Record("served", [search_list(4)])], 1, 3, id="mixed"),
    pytest.param([Record("served", [search_list(1, []), recommend_list(2, [])])], 0, 2, id="empty-lists"),
    pytest.param([Record("served", [{**search_list(1), "user_id": None, "query": None, "items": None,
                                     "index_version": None}]),
                  Record("events", [event(2, price=None, session_id=None, request_id=None, position=None)])],
                 1, 1, id="fields-with-nulls"),
])
def test_any_mix_of_routes_rolls_whole_with_absent_fields_null(tmp_path, records, events, requests):
    write_segment(tmp_path / "log", *records)
    store = LocalStore(tmp_path / "store")
    result = roll(tmp_path / "log", store)
    assert (result.segments, result.events, result.requests, result.failed) == (1, events, requests, [])
    assert segments(tmp_path / "log") == []
    stored = read_served(store, "requests")
    assert len(stored) == requests and len(read_served(store, "events")) == events
    sent = {r["request_id"]: r for rec in records if rec.kind == "served" for r in rec.items}
    for row in stored.itertuples():
        expected = sent[row.request_id]
        assert (list(row.items) if row.items is not None else None) == expected.get("items")
        assert (list(row.candidates) if row.candidates is not None else None) == expected.get("candidates")
        assert row.query == expected.get("query")


def test_the_reported_reproduction_a_search_only_segment_then_events_rolls_all_150(tmp_path):
    write_segment(tmp_path / "log", Record("served", [search_list(n) for n in range(100)]))
    write_segment(tmp_path / "log", *[Record("events", [event(n)]) for n in range(50)])
    store = LocalStore(tmp_path / "store")
    result = roll(tmp_path / "log", store)
    assert (result.segments, result.requests, result.events) == (2, 100, 50)
    assert len(read_served(store, "requests")) == 100 and len(read_served(store, "events")) == 50


def test_a_record_that_does_not_fit_names_the_record_and_field():
    with pytest.raises(RecordError, match=r"seg-1 requests: record 1: field 'items' must be a list"):
        table_from_records([search_list(0), {**search_list(1), "items": "i1"}], REQUESTS, source="seg-1 requests")
    with pytest.raises(RecordError, match=r"record 0: required field 'request_id'"):
        table_from_records([{"served_at": AT, "route": "search"}], REQUESTS)
    with pytest.raises(RecordError, match=r"field 'served_at' must be Unix seconds"):
        table_from_records([{**search_list(0), "served_at": "yesterday"}], REQUESTS)


def poison(n: int) -> Record:
    return Record("served", [{**recommend_list(n), "candidates": "not a list"}])


def test_a_poison_segment_is_quarantined_after_three_tries_and_later_segments_still_roll(tmp_path):
    log_dir, store = tmp_path / "log", LocalStore(tmp_path / "store")
    write_segment(log_dir, poison(1))
    (bad,) = segments(log_dir)
    bad_bytes = bad.read_bytes()
    for attempt in range(1, QUARANTINE_AFTER + 1):
        write_segment(log_dir, Record("events", [event(10 + attempt)]))  # acknowledged after the poison
        result = roll(log_dir, store)
        assert result.segments == 1 and result.events == 1  # the later segment rolled anyway
        if attempt < QUARANTINE_AFTER:
            assert bad.exists() and "RecordError" in result.failed[0] and not result.quarantined
            assert roll_health(log_dir, store).failing == {bad.name: result.failed[0].split(": ", 1)[1]}
        else:
            assert not bad.exists() and result.quarantined == [f"served/quarantine/segments/{bad.name}"]
    assert sorted(read_served(store, "events")["event_id"]) == ["e11", "e12", "e13"]
    (kept,) = quarantined(store)
    assert store.get_bytes(kept) == bad_bytes
    error = json.loads(store.get_bytes(f"{kept}.error.json"))
    assert error["tries"] == QUARANTINE_AFTER and "candidates" in error["error"]
    health = roll_health(log_dir, store)
    assert health.quarantined == 1 and health.failing == {} and health.unrolled_segments == 0


def test_the_quarantined_segment_comes_back_whole_and_rolls_once_the_code_is_fixed(tmp_path, monkeypatch):
    log_dir, store = tmp_path / "log", LocalStore(tmp_path / "store")
    write_segment(log_dir, poison(1), Record("events", [event(1)]))
    (bad,) = segments(log_dir)
    original = bad.read_bytes()
    for _ in range(QUARANTINE_AFTER):
        roll(log_dir, store)
    assert store.get_bytes(quarantined(store)[0]) == original  # moved whole, never rewritten
    real = served.table_from_records

    def fixed(records, schema, **kwargs):  # "the code is fixed": a string candidate becomes a one-item list
        return real([{**r, "candidates": [r["candidates"]]} if isinstance(r.get("candidates"), str) else r
                     for r in records], schema, **kwargs)

    monkeypatch.setattr(served, "table_from_records", fixed)
    assert retry_quarantined(log_dir, store) == [f"served/quarantine/segments/{bad.name}"]
    assert quarantined(store) == [] and store.list("served/quarantine") == []
    result = roll(log_dir, store)
    assert (result.segments, result.events, result.requests) == (1, 1, 1)
    assert read_served(store, "requests")["candidates"].tolist()[0].tolist() == ["not a list"]


def test_a_different_error_each_time_starts_the_count_again(tmp_path, monkeypatch):
    log_dir, store = tmp_path / "log", LocalStore(tmp_path / "store")
    write_segment(log_dir, Record("events", [event(1)]))
    errors = iter([ValueError("a"), ValueError("b"), ValueError("b"), ValueError("c")])

    def failing(*_args, **_kwargs):
        raise next(errors)

    monkeypatch.setattr(served, "table_from_records", failing)
    for _ in range(4):
        assert roll(log_dir, store).quarantined == []
    assert len(segments(log_dir)) == 1


@pytest.mark.parametrize("error", [OSError("the store is unreachable"), PermissionError("AccessDenied"),
                                   ConnectionError("reset")])
def test_a_transient_error_is_never_quarantined_and_stops_the_roll(tmp_path, monkeypatch, error):
    log_dir, store = tmp_path / "log", LocalStore(tmp_path / "store")
    write_segment(log_dir, Record("events", [event(1)]))

    def down(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(served, "write_parquet", down)
    for _ in range(QUARANTINE_AFTER + 2):
        with pytest.raises(type(error)):
            roll(log_dir, store)
    assert len(segments(log_dir)) == 1 and quarantined(store) == []
    monkeypatch.undo()
    assert roll(log_dir, store).events == 1


def test_an_unreadable_part_is_quarantined_and_the_other_hours_still_compact(tmp_path):
    from shoprank.storage import write_parquet

    store = LocalStore(tmp_path / "store")
    write_segment(tmp_path / "log", Record("events", [event(1), event(3600 + 1)]))  # hours 12 and 13
    roll(tmp_path / "log", store)
    hour_12, hour_13 = (key.rsplit("/", 1)[0] for key in sorted(store.list("served/events")))
    store.put_bytes(f"{hour_12}/part-seg-bad.parquet", b"PAR1 not parquet at all")
    late = table_from_records([event(3600 + 2)], served.FEEDBACK)
    write_parquet(store, f"{hour_13}/part-seg-late.parquet", late)
    result = served.RollResult()
    served.compact(store, pd.Timestamp(AT, unit="s", tz="UTC") + pd.Timedelta(hours=5), log=lambda _: None,
                   result=result)
    assert result.quarantined == [f"served/quarantine/parts/{hour_12}/part-seg-bad.parquet"]
    assert store.list("served/events") == [f"{hour_12}/events.parquet", f"{hour_13}/events.parquet"]
    assert sorted(read_served(store, "events")["event_id"]) == ["e1", "e3601", "e3602"]


def test_roll_health_sees_the_age_of_the_oldest_unrolled_segment(tmp_path):
    log_dir, store = tmp_path / "log", LocalStore(tmp_path / "store")
    log = EventLog(log_dir)
    log.append(Record("events", [event(1)]))
    (open_segment,) = segments(log_dir)
    created = int(open_segment.name.split("-")[1]) / 1e9
    health = roll_health(log_dir, store, now_s=created + 120)
    assert health.unrolled_segments == 1 and health.oldest_unrolled_age_s == pytest.approx(120)
    log.close()
    roll(log_dir, store)
    assert roll_health(log_dir, store).oldest_unrolled_age_s == 0.0


calls = st.lists(st.one_of(
    st.tuples(st.just("search"), st.lists(st.sampled_from(["i1", "i2", "i3"]), max_size=3)),
    st.tuples(st.just("recommend"), st.lists(st.sampled_from(["i4", "i5"]), max_size=2)),
    st.tuples(st.just("events"), st.integers(1, 4)),
    st.tuples(st.just("rotate"), st.just(0)),
), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=calls, resend=st.booleans())
def test_any_sequence_of_calls_exports_exactly_what_was_acknowledged_and_served(tmp_path_factory, script, resend):
    base = tmp_path_factory.mktemp("prop")
    log_dir, store = base / "log", LocalStore(base / "store")
    log = EventLog(log_dir)
    acknowledged: dict[str, dict] = {}
    served_lists: dict[str, dict] = {}
    n = 0
    for call, arg in script:
        n += 1
        if call == "search":
            served_lists[f"s{n}"] = search_list(n, list(arg))
            log.append(Record("served", [served_lists[f"s{n}"]]), durable=False)
        elif call == "recommend":
            served_lists[f"r{n}"] = recommend_list(n, list(arg))
            log.append(Record("served", [served_lists[f"r{n}"]]), durable=False)
        elif call == "events":
            batch = [event(n * 10 + j) for j in range(arg)]
            log.append(Record("events", batch))
            acknowledged.update({e["event_id"]: e for e in batch})
            if resend:  # a client resend that reached the log twice: stored once
                log.append(Record("events", batch[:1]))
        else:
            log.rotate()
            roll(log_dir, store)
    log.close()
    roll(log_dir, store)
    served.compact(store, pd.Timestamp(AT, unit="s", tz="UTC") + pd.Timedelta(days=2), log=lambda _: None)
    counts = export(store, base / "out")
    feedback = pd.read_parquet(base / "out" / "feedback") if counts["feedback"] else pd.DataFrame({"event_id": []})
    requests = pd.read_parquet(base / "out" / "requests") if counts["requests"] else pd.DataFrame({"request_id": []})
    assert sorted(feedback["event_id"]) == sorted(acknowledged)
    assert sorted(requests["request_id"]) == sorted(served_lists)
    for row in requests.itertuples():
        assert list(row.items) == served_lists[row.request_id]["items"]
        expected = served_lists[row.request_id].get("candidates")
        assert (None if row.candidates is None else list(row.candidates)) == expected
    assert pa.types.is_list(pa.parquet.read_schema(next((base / "out" / "requests").rglob("*.parquet"))).field(
        "candidates").type) if counts["requests"] else True
