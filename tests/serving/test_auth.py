"""Who may call the public API, against the real online stack in process: credentials (shopper tokens,
API keys and their scopes), forged and expired tokens, request ids a click must name, rate limits (in
process and shared through Redis), the shopper's privacy choices, the operator's port, and what the
API writes down about a request (the access log, the event log): pseudonyms, never a raw id or the
search text as typed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoprank.identity import request_ids
from shoprank.identity.api_keys import ApiKeys
from shoprank.layout import ERASED_PREFIX, ERASURE_REQUESTS_PREFIX, OPT_OUT_PREFIX
from shoprank.serving.api.app import create_app
from shoprank.settings import load_settings
from shoprank.storage import open_for, open_store
from tests.serving.conftest import ITEMS, api_key, bearer, issuer, subject_of
from tests.serving.test_http_edge import no_stack


def now_iso(offset_s: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat()


def view(event_id: str, item: str = "i01", **extra) -> dict:
    return {"event_id": event_id, "event_type": "view", "event_time": now_iso(), "item_id": item, **extra}


def click(event_id: str, request_id: str, **extra) -> dict:
    return {**view(event_id), "event_type": "click", "request_id": request_id, "position": 1, **extra}


def purchase(event_id: str, **extra) -> dict:
    return {**view(event_id), "event_type": "purchase", "price": 3.0, "quantity": 1, **extra}


def detail(response) -> dict:
    return response.json()["detail"]


@pytest.fixture(scope="module")
def client(online_stack, tmp_path_factory):
    from shoprank.search.index import SearchIndex, publish_index

    settings, _ = online_stack
    built = SearchIndex.build(ITEMS.assign(title=[f"item {n} tea" for n in range(len(ITEMS))]))
    publish_index(open_store(settings.models), built.save(tmp_path_factory.mktemp("index") / "v"), {})
    with TestClient(create_app(patient(settings))) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield client


def patient(settings):
    """Deadlines no busy test machine misses (a cold model's first answers): these tests are about
    who may call, not about how fast (test_api times the deadlines)."""
    return replace(settings, model_timeout_s=5.0, online_timeout_s=2.0)


def bare_app(**overrides: str):
    """An app over the stack's home without loading the recommender (what the limiter and the
    privacy lists need does not): its routes that need the stack answer 503."""
    return create_app(load_settings(**overrides), factory=no_stack, startup_wait_s=0)


# ---- who may call what --------------------------------------------------------------------------


def test_without_a_credential_every_protected_route_is_a_401(client):
    reader = subject_of("alice")
    calls = [client.post("/events", json=[view("anon-1")]),
             client.get("/privacy/opt-out"), client.post("/privacy/opt-out"), client.delete("/privacy/opt-out"),
             client.post("/admin/privacy/forget", json={"subject": reader}),
             client.post("/admin/privacy/forget", json={"subject": "not a pseudonym"}),  # refused before the body
             client.get("/recommend", params={"subject": reader}),
             client.get("/search", params={"q": "tea", "subject": reader})]
    for response in calls:
        assert response.status_code == 401, (response.request.url, response.text)
        assert detail(response)["reason"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # what anonymous callers may do: the non-personal lists
    assert client.get("/recommend").json()["reason"] == "anonymous"
    assert client.get("/search", params={"q": "tea"}).json()["reason"] == "anonymous"


def test_a_credential_without_the_scope_is_a_403(client):
    alice = subject_of("alice")
    reader = api_key("shop-backend", "read")
    writer = api_key("event-relay", "events:write")
    admin = api_key("operator", "admin")
    refused = [
        client.post("/events", json=[{**view("scope-1"), "user_id": alice}], headers=reader),
        client.get("/privacy/opt-out", headers=admin),  # only the shopper's own token chooses for them
        client.post("/privacy/opt-out", headers=writer),
        client.delete("/privacy/opt-out", headers=reader),
        client.post("/admin/privacy/forget", json={"subject": alice}, headers=bearer("alice")),
        client.post("/admin/privacy/forget", json={"subject": alice}, headers=writer),
        client.get("/recommend", params={"subject": alice}, headers=bearer("bob")),  # a shopper names nobody
        client.get("/search", params={"q": "tea", "subject": alice}, headers=bearer("bob")),
        client.get("/recommend", params={"subject": alice}, headers=writer),
        # a key without `read` gains nothing from a shopper's token sent beside it
        client.get("/recommend", params={"subject": alice}, headers={**writer, **bearer("bob")}),
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.method, response.request.url, response.text)
        assert detail(response)["reason"] == "missing_scope"
    named = client.get("/recommend", params={"subject": alice, "k": 3}, headers=reader).json()
    own = client.get("/recommend", params={"k": 3}, headers=bearer("alice")).json()
    assert named["subject"] == alice and named["personalised"] is True
    assert [i["item_id"] for i in named["items"]] == [i["item_id"] for i in own["items"]]
    assert client.get("/recommend", params={"subject": alice}, headers=admin).status_code == 200  # admin: all


def test_an_admin_queues_an_erasure_for_the_private_zone(client):
    settings = client.app.state.shoprank.settings
    target = subject_of("leaving-shopper")
    assert client.get("/recommend", headers=bearer("leaving-shopper")).status_code == 200
    response = client.post("/admin/privacy/forget", json={"subject": target}, headers=api_key("operator", "admin"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["subject"] == target and body["status"] == "queued"
    queued = json.loads(open_for(settings).get_bytes(f"{ERASURE_REQUESTS_PREFIX}/{body['request_id']}.json"))
    assert queued["pseudonym"] == target and queued["requested_by"] == "operator" and queued["key_id"]
    refused = client.get("/recommend", headers=bearer("leaving-shopper"))  # at once, before the private zone runs
    assert refused.status_code == 401 and detail(refused)["reason"] == "forgotten"
    bad = client.post("/admin/privacy/forget", json={"subject": "leaving-shopper"}, headers=api_key("op", "admin"))
    assert bad.status_code == 422  # a raw id is never taken


def test_unknown_and_revoked_api_keys_are_401(client):
    settings = client.app.state.shoprank.settings
    for key in ("srk_" + "x" * 43, "not-a-key", ""):
        response = client.get("/recommend", headers={"X-API-Key": key})
        assert response.status_code == 401 and detail(response)["reason"] == "invalid_api_key"
    headers = api_key("short-lived", "read")
    assert client.get("/recommend", headers=headers).status_code == 200  # a new key works at once
    keys = ApiKeys(Path(settings.resolve(settings.api_keys_file)))
    keys.revoke(next(k["key_id"] for k in keys.list() if k["caller"] == "short-lived"))
    deadline = time.monotonic() + 10  # the key file is re-checked every 5 s
    while (response := client.get("/recommend", headers=headers)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 401 and detail(response)["reason"] == "invalid_api_key"


# ---- forged tokens ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def forged_tokens(tmp_path: Path) -> dict[str, str]:
    """Tokens an attacker could make for alice (or anyone), none signed by the issuer's key."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    from shoprank.features.pseudonymise import PseudonymKey
    from shoprank.identity.tokens import TokenIssuer, create_signing_key
    from tests.serving.conftest import PSEUDONYM_KEY

    real = issuer()
    good = real.issue("alice")
    header, payload, signature = good.split(".")
    claims = json.loads(_unb64(payload))
    create_signing_key(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    other_pem = (tmp_path / "other.pem").read_bytes()
    other = TokenIssuer(other_pem, PseudonymKey(PSEUDONYM_KEY.encode(), "test"))
    other_key = serialization.load_pem_private_key(other_pem, password=None)
    public_pem = Path(load_settings().resolve(load_settings().token_public_keys)).read_bytes()

    def unsigned(head: dict, body: dict) -> str:
        return f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(body).encode())}"

    hs_head = {"alg": "HS256", "typ": "JWT", "kid": real.kid}
    hs_signing_input = unsigned(hs_head, claims)
    hs_mac = hmac.new(public_pem, hs_signing_input.encode(), hashlib.sha256).digest()
    return {
        "another key": other.issue("alice"),
        "another key, the real kid": jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": real.kid}),
        "tampered subject": ".".join([header, _b64(json.dumps({**claims, "sub": subject_of("bob")}).encode()),
                                      signature]),
        "tampered expiry": ".".join([header, _b64(json.dumps({**claims, "exp": claims["exp"] + 86400}).encode()),
                                     signature]),
        "alg none": unsigned({"alg": "none", "typ": "JWT", "kid": real.kid}, claims) + ".",
        "HS256 with the public key": f"{hs_signing_input}.{_b64(hs_mac)}",
        "expired": real.issue("alice", now=time.time() - 3600),
        "issued in the future": real.issue("alice", now=time.time() + 3600),
        "another audience": jwt.encode({**claims, "aud": "someone-else"}, real._key, algorithm="EdDSA",
                                       headers={"kid": real.kid}),
        "another issuer": jwt.encode({**claims, "iss": "someone-else"}, real._key, algorithm="EdDSA",
                                     headers={"kid": real.kid}),
        "no subject": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, real._key, algorithm="EdDSA",
                                 headers={"kid": real.kid}),
        "not a token": "alice",
        "signature cut": f"{header}.{payload}.",
        # the control: the same claims signed again by the issuer's key (accepted)
        "genuine": jwt.encode(claims, real._key, algorithm="EdDSA", headers={"kid": real.kid}),
    }


def test_forged_and_expired_tokens_are_refused(client, tmp_path):
    tokens = forged_tokens(tmp_path)
    genuine = tokens.pop("genuine")
    assert client.get("/privacy/opt-out", headers={"Authorization": f"Bearer {genuine}"}).status_code == 200
    for name, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        for response in (client.get("/recommend", headers=headers), client.get("/privacy/opt-out", headers=headers),
                         client.post("/events", json=[view(f"forged-{len(name)}")], headers=headers)):
            assert response.status_code == 401, (name, response.text)
            assert detail(response)["reason"] == "invalid_token", name
    for header in ("Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", issuer().issue("alice")):  # not `Bearer <token>`
        response = client.get("/recommend", headers={"Authorization": header})
        assert response.status_code == 401 and detail(response)["reason"] == "invalid_token", header


# ---- events: whose, which lists, what --------------------------------------------------------------


def test_clicks_must_name_a_list_served_to_the_same_shopper(client):
    secret = client.app.state.shoprank.gate.request_secret
    alice, bob = bearer("alice"), bearer("bob")
    own = client.get("/recommend", headers=alice).json()["request_id"]
    bobs = client.get("/recommend", headers=bob).json()["request_id"]
    anonymous = client.get("/recommend").json()["request_id"]
    searched = client.get("/search", params={"q": "tea"}, headers=alice).json()["request_id"]
    expired = request_ids.issue(subject_of("alice"), secret, ttl_s=60, now=time.time() - 3600)
    made_up = f"{'0' * 32}.{int(time.time()) + 3600}.{'0' * 32}"
    forged_expiry = f"{own.split('.')[0]}.{int(time.time()) + 10**6}.{own.split('.')[2]}"
    batch = [click("rid-own", own), click("rid-search", searched),
             click("rid-bobs", bobs), click("rid-anonymous", anonymous), click("rid-expired", expired),
             click("rid-made-up", made_up), click("rid-malformed", "r0"), click("rid-forged-expiry", forged_expiry),
             {**click("rid-impression", bobs), "event_type": "impression"}]
    body = client.post("/events", json=batch, headers=alice).json()
    assert body["accepted"] == 2, body
    rejected = {r["event_id"]: r for r in body["rejected"]}
    assert set(rejected) == {"rid-bobs", "rid-anonymous", "rid-expired", "rid-made-up", "rid-malformed",
                             "rid-forged-expiry", "rid-impression"}
    assert {r["field"] for r in rejected.values()} == {"request_id"}
    assert "not served to this shopper" in rejected["rid-bobs"]["reason"]
    assert "expired" in rejected["rid-expired"]["reason"]
    # a server-to-server caller's clicks: the list it asked for on the shopper's behalf
    named = client.get("/recommend", params={"subject": subject_of("carol")},
                       headers=api_key("shop-backend", "read")).json()["request_id"]
    relay = api_key("event-relay", "events:write")
    body = client.post("/events", json=[{**click("rid-relay", named), "user_id": subject_of("carol")},
                                        {**click("rid-relay-other", named), "user_id": subject_of("dave")}],
                       headers=relay).json()
    assert body["accepted"] == 1 and [r["event_id"] for r in body["rejected"]] == ["rid-relay-other"]


def test_a_token_posts_only_its_own_shoppers_events(client):
    body = client.post("/events", headers=bearer("alice"), json=[
        {**view("own-1"), "user_id": subject_of("alice")},  # its own pseudonym: fine
        {**view("own-2"), "user_id": subject_of("bob")},  # someone else's
        {**view("own-3"), "user_id": "alice"},  # a raw id, even its own
        {**view("own-4"), "user_id": ["alice"]},  # not even a string
        view("own-5")]).json()  # left out: the token's shopper
    assert body["accepted"] == 2
    assert [(r["event_id"], r["field"]) for r in body["rejected"]] == [("own-2", "user_id"), ("own-3", "user_id"),
                                                                       ("own-4", "user_id")]


def test_purchases_come_from_the_order_system_only(client):
    shopper = client.post("/events", json=[purchase("buy-1"), view("buy-view")], headers=bearer("alice")).json()
    assert shopper["accepted"] == 1
    assert [(r["event_id"], r["field"]) for r in shopper["rejected"]] == [("buy-1", "event_type")]
    relay = client.post("/events", json=[{**purchase("buy-2"), "user_id": subject_of("alice")}],
                        headers=api_key("event-relay", "events:write")).json()
    assert relay["accepted"] == 0 and relay["rejected"][0]["field"] == "event_type"
    only_purchase = api_key("misconfigured", "events:purchase")  # may buy, may not write events at all
    assert client.post("/events", json=[{**purchase("buy-3"), "user_id": subject_of("alice")}],
                       headers=only_purchase).status_code == 403
    orders = client.post("/events", json=[{**purchase("buy-4"), "user_id": subject_of("alice")}],
                         headers=api_key("order-system", "events:write", "events:purchase")).json()
    assert orders["accepted"] == 1 and orders["rejected"] == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_events_not_sent_as_json_are_415(client, content_type):
    headers = {**bearer("alice"), **({"content-type": content_type} if content_type else {})}
    response = client.post("/events", content=json.dumps([view(f"plain-{content_type}")]), headers=headers)
    assert response.status_code == 415 and detail(response)["reason"] == "not_json_content_type"


# ---- rate limits --------------------------------------------------------------------------------


def fresh_window() -> None:
    """The limits count per clock minute: start a test well inside one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def assert_limited(response) -> None:
    assert response.status_code == 429, response.text
    assert detail(response)["reason"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_rate_limits_per_shopper_key_and_address_answer_429(online_stack):
    fresh_window()
    app = bare_app(rate_limit_subject_per_min="3", rate_limit_key_per_min="2", rate_limit_anonymous_per_min="2")
    with TestClient(app) as client:
        shopper = bearer("eager-shopper")
        assert [client.get("/privacy/opt-out", headers=shopper).status_code for _ in range(3)] == [200] * 3
        assert_limited(client.get("/privacy/opt-out", headers=shopper))
        assert_limited(client.get("/privacy/opt-out", headers=bearer("eager-shopper")))  # the shopper, not the token
        assert client.get("/privacy/opt-out", headers=bearer("calm-shopper")).status_code == 200
        admin = api_key("busy-operator", "admin")
        forget = {"subject": subject_of("someone")}
        assert [client.post("/admin/privacy/forget", json=forget, headers=admin).status_code
                for _ in range(2)] == [202, 202]
        assert_limited(client.post("/admin/privacy/forget", json=forget, headers=admin))
        assert client.post("/admin/privacy/forget", json=forget,
                           headers=api_key("other-operator", "admin")).status_code == 202
        assert [client.get("/search", params={"q": "tea"}).status_code for _ in range(2)] == [503, 503]  # no stack
        assert_limited(client.get("/search", params={"q": "tea"}))


def test_rate_limits_are_shared_through_redis_by_every_process(online_stack, tmp_path, monkeypatch):
    import os
    import signal

    from shoprank.serving.api import auth
    from tests.conftest import redis_server

    fresh_window()
    with redis_server(tmp_path / "redis") as (url, redis_process):
        first = bare_app(rate_limit_subject_per_min="4", rate_limit_redis=url)
        second = bare_app(rate_limit_subject_per_min="4", rate_limit_redis=url)
        with TestClient(first) as one, TestClient(second) as two:
            shopper = bearer("shopper-on-two-pods")
            answers = [client.get("/privacy/opt-out", headers=shopper).status_code for client in (one, two) * 2]
            assert answers == [200] * 4  # 4 in all, 2 per process: each alone is under its limit
            assert_limited(one.get("/privacy/opt-out", headers=shopper))
            assert_limited(two.get("/privacy/opt-out", headers=shopper))
            alone = bare_app(rate_limit_subject_per_min="4")  # without Redis: a count of its own
            with TestClient(alone) as three:
                assert three.get("/privacy/opt-out", headers=shopper).status_code == 200
            # Redis hangs: a request waits for it once (its 0.2 s timeout), then the limits are skipped
            # for a while, uncounted (a limiter outage is no outage), and counted again after
            monkeypatch.setattr(auth, "LIMITS_RETRY_S", 1.0)
            os.kill(redis_process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                assert one.get("/privacy/opt-out", headers=shopper).status_code == 200
                assert time.monotonic() - started < 2.0
                started = time.monotonic()
                assert [one.get("/privacy/opt-out", headers=shopper).status_code for _ in range(5)] == [200] * 5
                assert time.monotonic() - started < 0.5  # not waiting for Redis each time
            finally:
                os.kill(redis_process.pid, signal.SIGCONT)
            time.sleep(1.1)
            assert_limited(one.get("/privacy/opt-out", headers=shopper))


# ---- privacy choices ----------------------------------------------------------------------------


def test_an_opt_out_is_at_once_and_an_opt_in_undoes_it(client):
    settings = client.app.state.shoprank.settings
    token, pseudonym = bearer("private-person"), subject_of("alice")
    alice = bearer("alice")
    reader = api_key("shop-backend", "read")
    assert client.get("/recommend", headers=alice).json()["personalised"] is True
    assert client.get("/privacy/opt-out", headers=alice).json() == {"subject": pseudonym, "opted_out": False}
    assert client.post("/privacy/opt-out", headers=alice).json() == {"subject": pseudonym, "opted_out": True}
    assert open_for(settings).exists(f"{OPT_OUT_PREFIX}/{pseudonym}.json")
    try:
        for answer in (client.get("/recommend", headers=alice), client.get("/search", params={"q": "tea"},
                                                                           headers=alice),
                       client.get("/recommend", params={"subject": pseudonym}, headers=reader)):
            body = answer.json()
            assert answer.status_code == 200 and body["personalised"] is False and body["reason"] == "opted_out"
            assert body["subject"] == pseudonym  # still their list (their clicks still join it)
            assert "ranker" not in {i.get("source", i.get("signal")) for i in body["items"]}
        assert client.get("/privacy/opt-out", headers=alice).json()["opted_out"] is True
        assert client.get("/recommend", headers=token).json()["reason"] == "cold_start"  # nobody else's
        # another process sees it within its poll
        with TestClient(bare_app(privacy_poll_s="0.2")) as other:
            deadline = time.monotonic() + 5
            while not other.get("/privacy/opt-out", headers=alice).json()["opted_out"] \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            assert other.get("/privacy/opt-out", headers=alice).json()["opted_out"] is True
    finally:
        assert client.delete("/privacy/opt-out", headers=alice).json() == {"subject": pseudonym, "opted_out": False}
    assert not open_for(settings).exists(f"{OPT_OUT_PREFIX}/{pseudonym}.json")
    again = client.get("/recommend", headers=alice).json()
    assert again["personalised"] is True and again["reason"] is None
    assert client.get("/search", params={"q": "tea"}, headers=alice).json()["reason"] != "opted_out"


def test_a_forgotten_shoppers_token_is_refused_once_the_list_is_read(client):
    state = client.app.state.shoprank
    store = open_for(state.settings)
    token = bearer("forgotten-shopper")
    assert client.get("/recommend", headers=token).status_code == 200
    store.put_bytes(f"{ERASED_PREFIX}/{subject_of('forgotten-shopper')}.json", b'{"erasure_id": "e1"}')
    try:
        state.privacy.refresh()
        for response in (client.get("/recommend", headers=token), client.get("/privacy/opt-out", headers=token),
                         client.post("/events", json=[view("forgotten-1")], headers=token),
                         client.get("/recommend", headers=bearer("forgotten-shopper"))):  # a new token too
            assert response.status_code == 401 and detail(response)["reason"] == "forgotten", response.text
        assert client.get("/recommend", headers=bearer("alice")).status_code == 200  # nobody else
        # a server-to-server caller cannot name them either: nothing personal, nothing taken for them
        named = client.get("/recommend", params={"subject": subject_of("forgotten-shopper")},
                           headers=api_key("shop-backend", "read")).json()
        assert named["personalised"] is False and named["reason"] == "forgotten" and named["subject"] is None
        searched = client.get("/search", params={"q": "tea", "subject": subject_of("forgotten-shopper")},
                              headers=api_key("shop-backend", "read")).json()
        assert searched["reason"] == "forgotten" and searched["subject"] is None
        relayed = client.post("/events", json=[{**view("forgotten-2"), "user_id": subject_of("forgotten-shopper")}],
                              headers=api_key("event-relay", "events:write")).json()
        assert relayed["accepted"] == 0 and relayed["rejected"][0]["field"] == "user_id"
    finally:
        store.delete_prefix(f"{ERASED_PREFIX}/{subject_of('forgotten-shopper')}.json")
        state.privacy.refresh()


# ---- the operator's port ------------------------------------------------------------------------


def test_the_internal_port_serves_the_operator_and_the_public_port_the_shop(online_stack):
    app = create_app(patient(load_settings(internal_port="9090")))
    # one client (one event loop for the app's clients), on the internal port; the public port (80)
    # by absolute URL
    with TestClient(app, base_url="http://testserver:9090") as internal:
        public = "http://testserver"
        deadline = time.monotonic() + 60
        while internal.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        for path in ("/metrics", "/readyz", "/openapi.json", "/docs"):
            assert internal.get(path).status_code == 200, path
            response = internal.get(public + path)
            assert response.status_code == 404 and detail(response)["reason"] == "not_found", path
        assert internal.get(f"{public}/recommend", headers=bearer("alice")).json()["personalised"] is True
        assert internal.get("/recommend", headers=bearer("alice")).status_code == 404
        assert internal.get("/search", params={"q": "tea"}).status_code == 404
        assert internal.post("/events", json=[view("internal-1")], headers=bearer("alice")).status_code == 404
        assert internal.get("/privacy/opt-out", headers=bearer("alice")).status_code == 404
        assert internal.get(f"{public}/healthz").status_code == internal.get("/healthz").status_code == 200
        assert '"/recommend"' in internal.get("/openapi.json").text


# ---- what the API writes down -------------------------------------------------------------------


def test_the_access_log_names_caller_and_pseudonym_never_the_id_or_the_query(online_stack, capsys):
    settings, _ = online_stack
    raw = "customer-01665307"
    reader = api_key("access-log-reader", "read")
    reader_id = next(k["key_id"] for k in ApiKeys(Path(settings.resolve(settings.api_keys_file))).list()
                     if k["caller"] == "access-log-reader")
    with TestClient(create_app(patient(settings))) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        capsys.readouterr()
        client.get("/recommend", params={"k": 3}, headers=bearer(raw))
        client.get("/search", params={"q": "red shoes jo@example.com 13800138000"}, headers=bearer(raw))
        client.get("/recommend", params={"subject": subject_of(raw)}, headers=reader)
        client.post("/events", json=[{**view("log-1"), "event_type": "search", "item_id": None,
                                      "query": "red shoes jo@example.com"}], headers=bearer(raw))
        client.get("/recommend", headers={"Authorization": f"Bearer {raw}"})  # a raw id sent as a token
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"ts"')]
    assert [(e["route"], e["status"]) for e in lines] == [("/recommend", 200), ("/search", 200), ("/recommend", 200),
                                                           ("/events", 200), ("/recommend", 401)]
    assert [e["caller"] for e in lines[:2]] == ["shopper", "shopper"] and lines[3]["caller"] == "shopper"
    assert lines[2]["caller"] == f"access-log-reader:{reader_id}"  # the key's id, never the key
    assert [e["subject"] for e in lines[:4]] == [subject_of(raw)] * 4 and lines[4]["subject"] is None
    text = json.dumps(lines)
    for secret in ("01665307", "shoes", "example.com", "13800138000", "srk_"):
        assert secret not in text, secret


def test_the_event_log_holds_pseudonyms_and_scrubbed_queries_only(client):
    from shoprank.data.event_log import read_all
    from shoprank.data.search_log import scrub

    state = client.app.state.shoprank
    raw = "shopper-raw-id-4417"
    email, phone = "jo.raw@example.com", "13800138000"
    token = bearer(raw)
    searched = client.get("/search", params={"q": f"tea for {email} {phone}"}, headers=token)
    assert searched.status_code == 200, searched.text
    listed = client.get("/recommend", headers=token).json()["request_id"]
    named = client.get("/recommend", params={"subject": subject_of(raw)}, headers=api_key("shop-backend", "read"))
    assert named.status_code == 200
    posted = client.post("/events", headers=token, json=[
        {**view("raw-1"), "event_type": "search", "item_id": None, "query": f"tea {email} call {phone}",
         "session_id": f"session-of-{raw}"},
        click("raw-2", listed, session_id=f"session-of-{raw}"),
        view("raw-3")]).json()
    assert posted["accepted"] == 3, posted
    relayed = client.post("/events", headers=api_key("event-relay", "events:write"),
                          json=[{**view("raw-4"), "user_id": subject_of(raw)}]).json()
    assert relayed["accepted"] == 1
    records = [(record.kind, item) for read in read_all(state.settings.event_log_dir) for record in read.records
               for item in record.items]
    mine = [item for _, item in records if item.get("user_id") == subject_of(raw)]
    assert {i.get("event_id") for i in mine} >= {"raw-1", "raw-2", "raw-3", "raw-4"}
    assert sum(1 for kind, item in records if kind == "served" and item["user_id"] == subject_of(raw)) == 3
    assert all(item["user_key_id"] for item in mine)  # every pseudonym with its key id
    search = next(i for i in mine if i.get("event_id") == "raw-1")
    assert search["query"] == scrub(f"tea {email} call {phone}") and "[email]" in search["query"]
    assert search["session_id"] != f"session-of-{raw}"  # keyed with the API's secret
    served_search = next(i for kind, i in records if kind == "served" and i["request_id"] ==
                         searched.json()["request_id"])
    assert served_search["query"] == scrub(f"tea for {email} {phone}") and "[email]" in served_search["query"]
    text = json.dumps([item for _, item in records])
    for secret in (raw, "raw-id-4417", email, "example.com", phone, f"session-of-{raw}"):
        assert secret not in text, secret
