"""POST /events as the front end uses it (the shopper's token names the shopper), in process over the
real online stack: a batch stored once with its bad events listed, the limits, and the loop closing: a
view shows up in the next recommendation's candidates, and an impression joins the served list it
names. What is stored holds the shopper's pseudonym and its key id, never the raw id."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from shoprank.features.pseudonymise import PseudonymKey
from shoprank.serving.api.intake import MAX_BODY_BYTES
from tests.serving.conftest import PSEUDONYM_KEY, api_key, api_with_search, bearer, stored, subject_of


def now_iso(offset_s: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat()


def view(event_id: str, item: str = "i01", **extra) -> dict:
    """A view as the front end sends it with a shopper token: no user_id (the token names the shopper)."""
    return {"event_id": event_id, "event_type": "view", "event_time": now_iso(), "item_id": item, **extra}


def post(client, events, user: str = "alice", **kwargs):
    """POST /events as `user`'s front end (their token)."""
    return client.post("/events", json=events, headers=bearer(user), **kwargs)


def recommend(client, user: str, **params):
    return client.get("/recommend", params=params, headers=bearer(user))


@pytest.fixture(scope="module")
def client(online_stack, tmp_path_factory):
    with api_with_search(online_stack[0], tmp_path_factory.mktemp("index")) as client:
        yield client


def test_a_batch_keeps_its_good_events_lists_the_bad_and_stores_a_resend_once(client):
    served = recommend(client, "alice", k=3).json()["request_id"]  # the list the impression is of
    batch = [view("a1"), view("a2", price=-3), {**view("a3"), "event_type": "impression", "request_id": served,
                                                  "position": 2}, view("a1")]
    first = post(client, batch)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert body["rejected"] == [{"index": 1, "event_id": "a2", "field": "price", "reason": "price must be > 0, got -3"}]
    again = post(client, batch[:1] + batch[2:3])
    assert again.status_code == 200 and again.json()["duplicates"] == 2 and again.json()["accepted"] == 0
    events, _ = stored(client)
    mine = events[events["event_id"].isin(["a1", "a2", "a3"])]
    assert sorted(mine["event_id"]) == ["a1", "a3"]
    impression = mine.set_index("event_id").loc["a3"]
    assert impression["request_id"] == served and impression["position"] == 2
    assert set(mine["user_id"]) == {subject_of("alice")}  # the pseudonym, never "alice"
    assert set(mine["user_key_id"]) == {PseudonymKey(PSEUDONYM_KEY.encode(), "test").id}


def test_readiness_says_where_events_go_and_that_sessions_are_live(client):
    events = client.get("/readyz").json()["events"]
    assert events["error"] is None and events["sessions"] is True and events["log"].endswith("events/log")


def test_an_unknown_field_refuses_the_whole_batch_and_stores_nothing_of_it(client):
    response = post(client, [view("u1"), view("u2", colour="red")])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["reason"] == "unknown_fields" and detail["fields"] == {"1": ["colour"]}
    assert post(client, [view("u1")]).json()["accepted"] == 1  # u1 was not taken before


@pytest.mark.parametrize("body,status,reason", [
    (b"{not json", 400, "not_json"),
    (b"\xff\xfe", 400, "not_json"),
    (b"[" * 200_000 + b"]" * 200_000, 400, "not_json"),
    (json.dumps({"event_id": "x"}).encode(), 422, "not_a_list"),
    (b"[]", 422, "not_a_list"),
    (json.dumps([view(f"m{i}") for i in range(1001)]).encode(), 413, "too_many_events"),
    (json.dumps([view("big", session_id="s" * 100)] * 1) .encode() + b" " * MAX_BODY_BYTES, 413, "too_large"),
])
def test_limits_and_malformed_bodies_get_a_clear_error(client, body, status, reason):
    response = client.post("/events", content=body, headers={"content-type": "application/json", **bearer("alice")})
    assert response.status_code == status, response.text
    assert response.json()["detail"]["reason"] == reason


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_a_body_not_sent_as_json_is_refused_and_nothing_is_stored(client, content_type):
    """A cross-site `text/plain` or form post (no CORS preflight) cannot write events."""
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps([view(f"csrf-{content_type}")])
    response = client.post("/events", content=body.encode(), headers={**headers, **bearer("alice")})
    assert response.status_code == 415 and response.json()["detail"]["reason"] == "not_json_content_type"
    answer = client.post("/events", content=body, headers={"content-type": "application/json; charset=utf-8",
                                                           **bearer("alice")})
    assert answer.json()["accepted"] == 1  # the same events, sent as JSON: taken (nothing was stored before)


def test_a_batch_of_only_bad_events_is_answered_per_event(client):
    response = post(client, [view("r1", price=0), view("r2", item=None)])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 0 and [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "price"),
                                                                                           (1, "item_id")]


def test_a_chunked_body_over_the_limit_is_refused_without_a_content_length(client):
    def chunks():
        yield b"["
        for _ in range(300):
            yield json.dumps(view("c", session_id="x" * 100)).encode() * 80 + b","
    response = client.post("/events", content=chunks(), headers={"content-type": "application/json",
                                                                  **bearer("alice")})
    assert response.status_code == 413 and response.json()["detail"]["reason"] == "too_large"


def test_without_sync_the_session_follows_within_a_second(client):
    posted = post(client, [view("w1", item="i12")], user="walker")
    assert posted.status_code == 200 and posted.json()["sessions_updated"] is None
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        items = {i["item_id"]: i["reason"]["template"] for i in recommend(client, "walker").json()["items"]}
        if items.get("i12") == "viewed_recently":
            return
        time.sleep(0.02)
    pytest.fail(f"the view was not in walker's recommendations within 1 s: {items}")


def test_a_log_that_cannot_write_is_a_503_and_the_resend_is_stored(client, monkeypatch):
    intake = client.app.state.shoprank.intake
    real = intake.events.append

    def full(record, durable=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(intake.events, "append", full)
    refused = post(client, [view("full1")])
    assert refused.status_code == 503 and refused.json()["detail"]["reason"] == "event_log"
    assert "send it again" in refused.json()["detail"]["message"]
    monkeypatch.setattr(intake.events, "append", real)
    assert post(client, [view("full1")]).json()["accepted"] == 1  # not taken by the failure


def test_a_view_is_in_the_next_recommendations_candidates_and_its_served_list_is_logged(client):
    before = recommend(client, "alice", k=5).json()
    assert before["request_id"]
    # alice buys i00-i05; i15 is erin's (i12-i17), bought with the rest of them
    posted = post(client, [view("s1", item="i15")], params={"sync": "true"})
    assert posted.json()["sessions_updated"] == 1
    after = recommend(client, "alice", k=5)
    assert after.status_code == 200
    _, requests = stored(client)
    served = requests.set_index("request_id").loc[after.json()["request_id"]]
    sources = dict(zip(served["candidates"], served["candidate_sources"], strict=True))
    assert sources["i15"] == "session"
    assert any(s == "session_cooc" for s in sources.values())
    assert served["items"].tolist() == [i["item_id"] for i in after.json()["items"]]
    assert served["model_version"] == 1 and served["route"] == "recommend"
    assert served["user_id"] == subject_of("alice") and served["user_key_id"]
    old = requests.set_index("request_id").loc[before["request_id"]]
    assert "session" not in set(old["candidate_sources"])  # (every item is a candidate in this tiny shop)


def test_a_new_shopper_who_just_viewed_something_gets_it_and_what_goes_with_it(client):
    assert recommend(client, "newcomer").json()["items"][0]["reason"]["template"] == "popular_in"
    post(client, [view("n1", item="i10")], user="newcomer", params={"sync": "true"})
    body = recommend(client, "newcomer", k=10).json()
    assert body["cold_start"] is True
    reasons = {i["item_id"]: i["reason"] for i in body["items"]}
    assert reasons["i10"]["template"] == "viewed_recently"
    assert {"template": "bought_with", "args": {"item_id": "i10"}} in reasons.values()


def test_an_old_event_is_stored_but_does_not_enter_the_session(client):
    old = {**view("o1", item="i11"), "event_time": now_iso(-3600)}
    assert post(client, [old], user="oldtimer", params={"sync": "true"}).json() | {"rejected": []} == {
        "accepted": 1, "duplicates": 0, "rejected": [], "sessions_updated": 0, "session_error": None}
    body = recommend(client, "oldtimer").json()
    assert "viewed_recently" not in {i["reason"]["template"] for i in body["items"]}


def test_a_search_answer_is_logged_with_what_placed_each_item(client):
    response = client.get("/search", params={"q": "tea"}, headers=bearer("alice"))
    assert response.status_code == 200, response.text
    _, requests = stored(client)
    served = requests.set_index("request_id").loc[response.json()["request_id"]]
    assert served["query"] == "tea" and served["route"] == "search" and served["user_id"] == subject_of("alice")
    assert served["sources"].tolist() == [i["signal"] for i in response.json()["items"]]


def test_a_segment_of_search_lists_alone_then_events_all_roll_and_metrics_say_nothing_waits(client):
    state = client.app.state.shoprank
    state.intake.events.rotate()
    request_ids = []
    for n in range(100):
        answer = client.get("/search", params={"q": f"item {n % 30} tea"}, headers=bearer(f"shopper-{n}"))
        assert answer.status_code == 200, answer.text
        request_ids.append(answer.json()["request_id"])
    state.intake.events.rotate()  # the first segment holds search lists only
    for n in range(50):
        assert post(client, [view(f"search-roll-{n}")]).json()["accepted"] == 1
    events, requests = stored(client)
    assert set(request_ids) <= set(requests["request_id"])
    assert requests.set_index("request_id").loc[request_ids]["candidates"].isna().all()
    assert {f"search-roll-{n}" for n in range(50)} <= set(events["event_id"])
    metrics = client.get("/metrics").text
    assert "shoprank_api_event_roll_oldest_unrolled_seconds 0.0" in metrics
    assert "shoprank_api_event_roll_quarantined 0.0" in metrics
    assert "shoprank_api_event_roll_failing_segments 0.0" in metrics


def test_a_server_to_server_caller_names_shoppers_by_pseudonym_and_a_raw_id_is_refused(client):
    backend = api_key("shop-backend", "events:write")
    batch = [{**view("b1"), "user_id": subject_of("bob")}, {**view("b2"), "user_id": "bob"},
             {**view("b3"), "user_id": subject_of("bob").upper()}]
    body = client.post("/events", json=batch, headers=backend).json()
    assert body["accepted"] == 1 and [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "user_id"),
                                                                                           (2, "user_id")]
    events, _ = stored(client)
    assert "b2" not in set(events["event_id"]) and "bob" not in set(events["user_id"])
    row = events.set_index("event_id").loc["b1"]  # under the key the online store was materialised with
    assert row["user_id"] == subject_of("bob") and row["user_key_id"] == PseudonymKey(PSEUDONYM_KEY.encode(), "t").id
