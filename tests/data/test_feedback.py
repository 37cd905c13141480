"""The event contract of POST /events: each bad event is refused on its own, with its field and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shoprank.data.feedback import FEEDBACK, Rejection, UnknownFields, unknown_fields, validate_event

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def event(**fields) -> dict:
    base = {"event_id": "e1", "event_type": "view", "user_id": "alice", "event_time": "2026-12-03T11:59:00Z",
            "item_id": "i01"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("kind,extra", [("view", {}), ("cart", {"price": 2.5, "quantity": 2}),
                                        ("purchase", {"price": 3, "quantity": 1}),
                                        ("search", {"item_id": None, "query": "green tea"}),
                                        ("impression", {"request_id": "r1", "position": 1}),
                                        ("click", {"request_id": "r1", "position": 7})])
def test_every_event_type_is_stored_with_its_fields(kind, extra):
    checked = validate_event(event(event_type=kind, **extra), 0, NOW)
    assert isinstance(checked, dict), checked
    assert checked["event_type"] == kind
    assert checked["event_time"] == datetime(2026, 12, 3, 11, 59, tzinfo=UTC).timestamp()
    assert set(checked) <= set(FEEDBACK.names)


@pytest.mark.parametrize("fields,field,words", [
    ({"event_id": None}, "event_id", "is required"),
    ({"event_id": ""}, "event_id", "blank"),
    ({"event_id": "x" * 129}, "event_id", "at most 128"),
    ({"event_type": "like"}, "event_type", "must be one of"),
    ({"user_id": 42}, "user_id", "must be a string"),
    ({"user_id": "al\x00ice"}, "user_id", "control characters"),
    ({"event_time": "2026-12-03 11:59"}, "event_time", "no time zone"),
    ({"event_time": "yesterday"}, "event_time", "not an ISO 8601 time"),
    ({"event_time": "2026-12-03T12:06:00Z"}, "event_time", "in the future"),
    ({"event_time": "1999-12-31T00:00:00Z"}, "event_time", "before 2000-01-01"),
    ({"event_time": None}, "event_time", "is required"),
    ({"item_id": None}, "item_id", "is required"),
    ({"price": 0}, "price", "must be > 0"),
    ({"price": -1.5}, "price", "must be > 0"),
    ({"price": "2"}, "price", "must be a number"),
    ({"price": float("nan")}, "price", "must be > 0"),
    ({"quantity": 1.5}, "quantity", "whole number"),
    ({"quantity": True}, "quantity", "must be a number"),
    ({"event_type": "search", "item_id": None}, "query", "is required"),
    ({"event_type": "search", "item_id": None, "query": "q" * 257}, "query", "at most 256"),
    ({"event_type": "impression", "position": 1}, "request_id", "is required"),
    ({"event_type": "click", "request_id": "r"}, "position", "is required"),
    ({"event_type": "click", "request_id": "r", "position": 0}, "position", "must be > 0"),
    ({"event_type": "click", "request_id": "r", "position": 1001}, "position", "<= 1000"),
])
def test_a_bad_event_is_rejected_naming_its_field(fields, field, words):
    checked = validate_event(event(**fields), 3, NOW)
    assert isinstance(checked, Rejection)
    assert checked.index == 3 and checked.field == field and words in checked.reason, checked


def test_clock_skew_inside_the_gates_tolerance_is_accepted_and_unix_seconds_work():
    assert isinstance(validate_event(event(event_time=(NOW + timedelta(minutes=4)).isoformat()), 0, NOW), dict)
    assert isinstance(validate_event(event(event_time=NOW.timestamp() - 10), 0, NOW), dict)
    assert isinstance(validate_event(event(event_time="2026-12-03T13:59:00+02:00"), 0, NOW), dict)


def test_something_that_is_not_an_object_is_rejected_alone():
    checked = validate_event(["view"], 5, NOW)
    assert isinstance(checked, Rejection) and checked.index == 5 and "JSON object" in checked.reason


def test_a_field_the_contract_does_not_know_is_found_for_the_whole_batch():
    batch = [event(), event(event_id="e2", colour="red"), "junk", event(event_id="e3", userId="bob")]
    found = unknown_fields(batch)
    assert found == {1: ["colour"], 3: ["userId"]}
    assert "colour" in str(UnknownFields(found))
