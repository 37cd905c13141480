"""The online API as the shop's front end meets it: a real `shoprank serve-api` process (two
workers, a public and an internal port) over a real Feast online store and model server, called with
shopper tokens and fuzzed over its OpenAPI schema (with and without a token); and, in process, what
happens when the feature store or the model server fails or hangs."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from tensorflow_serving.apis import prediction_service_pb2_grpc

from shoprank.serving.api.app import create_app
from shoprank.serving.api.recommender import OnlineRecommender
from shoprank.settings import load_settings
from tests.conftest import free_port
from tests.serving.conftest import SHOPPERS, api_key, bearer, subject_of

#: The model deadline of in-process tests that are not about deadlines: a cold model's first answers
#: on a busy test machine may take past the default 0.5 s (the deadline tests set their own).
PATIENT_S = 5.0
REQUEST_ID = re.compile(r"^[0-9a-f]{32}\.[0-9]+\.[0-9a-f]{32}$")  # <list id>.<expiry>.<signature>


def _wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = requests.get(f"{url}/readyz", timeout=2)
            if last.status_code == 200:
                return
        except requests.ConnectionError as err:
            last = err
        time.sleep(0.3)
    pytest.fail(f"API at {url} not ready after {timeout}s: {getattr(last, 'text', last)}")


def warm_up(url: str, timeout: float = 30.0) -> None:
    """A few personalised answers from each worker: a cold model's first predictions (its graph
    traced) can take past the 0.5 s deadline on a busy test machine; the tests measure the warm path."""
    deadline, answered, token = time.monotonic() + timeout, 0, bearer("alice")
    while answered < 6 and time.monotonic() < deadline:
        answered += requests.get(f"{url}/recommend", headers=token, timeout=5).status_code == 200


@pytest.fixture(scope="module")
def api(online_stack, tmp_path_factory):
    """The server: `url` (the public port), `internal` (the operator's port), `log` (its stdout: the
    access log)."""
    from shoprank.search.index import SearchIndex, publish_index
    from shoprank.storage import open_store
    from tests.serving.conftest import ITEMS

    settings, _ = online_stack  # a search index too, so every route of the schema answers
    built = SearchIndex.build(ITEMS.assign(title=[f"item {n} tea" for n in range(len(ITEMS))]))
    publish_index(open_store(settings.models), built.save(tmp_path_factory.mktemp("index") / "v"), {})
    port, internal = free_port(), free_port()
    path = tmp_path_factory.mktemp("api-log") / "api.log"
    log = open(path, "w")  # noqa: SIM115 (the server's, while it runs)
    proc = subprocess.Popen([sys.executable, "-m", "shoprank.cli", "serve-api", "--port", str(port),
                             "--internal-port", str(internal), "--workers", "2"],
                            env={**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},
                                 "TF_CPP_MIN_LOG_LEVEL": "3"},  # buffered, as in a pod: the log flushes its lines
                            stdout=log, stderr=subprocess.STDOUT, text=True)  # a file: a pipe nobody reads fills
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"http://127.0.0.1:{internal}")
        warm_up(url)
        yield SimpleNamespace(url=url, internal=f"http://127.0.0.1:{internal}", log=path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve-api did not stop within 10 s of SIGTERM")
        finally:
            log.close()


@pytest.fixture(scope="module")
def api_url(api):
    return api.url


def test_known_user_gets_ranked_items_with_a_request_id(api_url):
    response = requests.get(f"{api_url}/recommend", params={"k": 5}, headers=bearer("alice"), timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == subject_of("alice") and body["model_version"] == 1 and body["cold_start"] is False
    assert body["personalised"] is True and body["reason"] is None
    assert REQUEST_ID.match(body["request_id"]) and response.headers["X-Request-Id"] == body["request_id"]
    items = body["items"]
    assert len(items) == 5 and all(i["source"] == "ranker" for i in items)
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    # a reason a shopper can read; the internal candidate source is not in the answer
    assert all("candidate" not in i for i in items)
    assert {i["reason"]["template"] for i in items} <= {"buy_again", "popular_in", "bought_with", "similar_shoppers"}
    assert "buy_again" in {i["reason"]["template"] for i in items}
    timing = response.headers["Server-Timing"]
    for stage in ("user", "candidates", "features", "predict", "total"):
        assert f"{stage};dur=" in timing
    again = requests.get(f"{api_url}/recommend", params={"k": 5}, headers=bearer("alice"), timeout=5).json()
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in items]  # stable order
    assert again["request_id"] != body["request_id"]


@pytest.mark.parametrize("user_id", ["someone-new", "ü李-42", "a b", "x" * 128, "1e9", "...", "a/b", "%01bad"])
def test_unknown_and_odd_ids_are_cold_starts(api_url, user_id):
    """Any id the shop has is fine in a token: it only enters the pseudonym, never a path or a query."""
    response = requests.get(f"{api_url}/recommend", params={"k": 3}, headers=bearer(user_id), timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == subject_of(user_id) and body["cold_start"] is True and body["model_version"] is None
    assert body["personalised"] is False and body["reason"] == "cold_start"
    assert len(body["items"]) == 3 and {i["source"] for i in body["items"]} == {"popular"}


def test_without_a_credential_the_answer_is_the_popular_items(api_url):
    response = requests.get(f"{api_url}/recommend", params={"k": 3}, timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] is None and body["personalised"] is False and body["reason"] == "anonymous"
    assert body["cold_start"] is True and {i["source"] for i in body["items"]} == {"popular"}
    assert REQUEST_ID.match(body["request_id"])


@pytest.mark.parametrize(("path", "status"), [
    ("/recommend?k=0", 422), ("/recommend?k=101", 422), ("/recommend?k=ten", 422), ("/recommend?k=-1", 422),
    ("/recommend?subject=alice", 422), ("/recommend?subject=%01bad", 422), (f"/recommend?subject={'a' * 21}", 422),
    ("/recommend/alice", 404), ("/recommend/a%2Fb", 404),
])
def test_bad_requests_are_refused_with_the_reason(api_url, path, status):
    response = requests.get(api_url + path, headers=api_key("shop-backend", "read"), timeout=5)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["detail"][0]["loc"][-1] in ("k", "subject")


def test_k_up_to_the_limit_returns_every_candidate_at_most(api_url):
    body = requests.get(f"{api_url}/recommend", params={"k": 100}, headers=bearer("bob"), timeout=5).json()
    ids = [i["item_id"] for i in body["items"]]
    assert 5 <= len(ids) <= 100 and len(ids) == len(set(ids))


def test_metrics_merge_both_workers(api):
    for user in SHOPPERS * 4:
        assert requests.get(f"{api.url}/recommend", headers=bearer(user), timeout=5).status_code == 200
    text = requests.get(f"{api.internal}/metrics", timeout=5).text
    served = [line for line in text.splitlines()
              if line.startswith('shoprank_api_requests_total{route="/recommend",status="200"}')]
    assert served and float(served[0].split()[-1]) >= len(SHOPPERS) * 4
    assert 'shoprank_api_stage_seconds_count{stage="predict"}' in text
    assert "shoprank_api_model_version 1.0" in text
    age = [line for line in text.splitlines() if line.startswith("shoprank_api_online_features_age_seconds")]
    assert age and 0 <= float(age[0].split()[-1]) < 3600
    assert "shoprank_api_request_seconds_bucket" in text


def test_the_operators_routes_answer_on_the_internal_port_only(api):
    for path in ("/metrics", "/readyz", "/openapi.json", "/docs"):
        assert requests.get(api.url + path, timeout=5).status_code == 404, path
        assert requests.get(api.internal + path, timeout=5).status_code == 200, path
    assert requests.get(f"{api.internal}/recommend", headers=bearer("alice"), timeout=5).status_code == 404
    assert requests.post(f"{api.internal}/events", json=[], headers=bearer("alice"), timeout=5).status_code == 404
    assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200  # the probe's, on both
    assert requests.get(f"{api.internal}/healthz", timeout=5).status_code == 200


def test_the_access_log_names_the_caller_and_the_pseudonym_never_the_id(api):
    assert requests.get(f"{api.url}/search", params={"q": "tea for logged-shopper@example.com"},
                        headers=bearer("logged-shopper"), timeout=5).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = api.log.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith('{"ts"')]
        mine = [e for e in lines if e["subject"] == subject_of("logged-shopper")]
        if mine:
            break
        time.sleep(0.1)
    assert mine and mine[0]["route"] == "/search" and mine[0]["caller"] == "shopper" and mine[0]["status"] == 200
    assert "logged-shopper" not in text and "example.com" not in text and "tea for" not in text


def test_openapi_schema_fuzz(api):
    """Anything the OpenAPI schema allows gets a documented answer, never a 5xx (schemathesis): called
    anonymously and with a shopper's token, each route on the port that serves it."""
    from shoprank.serving.api.app import INTERNAL_PATHS

    schema = schemathesis.openapi.from_url(f"{api.internal}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /recommend", "GET /search", "POST /events", "GET /privacy/opt-out", "POST /privacy/opt-out",
        "DELETE /privacy/opt-out", "POST /admin/privacy/forget", "GET /readyz", "GET /healthz"}
    assert not any("{user_id}" in op.label for op in operations)
    token = bearer("fuzzing-shopper")
    seen = {}
    for operation in operations:
        base = api.internal if operation.path in INTERNAL_PATHS else api.url
        for who, headers in (("anonymous", None), ("shopper", token)):
            seen[(operation.label, who)] = fuzz(operation, base, headers)
    # the token got past the gate (and only as far as a shopper may go); anonymous callers did not
    assert 200 in seen[("POST /events", "shopper")] and 401 in seen[("POST /events", "anonymous")]
    assert 200 in seen[("GET /privacy/opt-out", "shopper")] and seen[("GET /privacy/opt-out", "anonymous")] == {401}
    assert 403 in seen[("POST /admin/privacy/forget", "shopper")]
    assert 200 in seen[("GET /recommend", "shopper")] and 200 in seen[("GET /recommend", "anonymous")]


def fuzz(operation, base_url: str, headers: dict | None) -> set[int]:
    """Fuzz one operation; the status codes it answered."""
    statuses: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        statuses.add(case.call_and_validate(base_url=base_url, headers=headers).status_code)

    check()
    return statuses


# ---- failures, in process ---------------------------------------------------------------------


def _ready(client: TestClient, timeout: float = 60.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.app.state.shoprank.load_error is None:
            return client.get("/readyz")
        time.sleep(0.1)
    pytest.fail(f"recommender never loaded: {client.app.state.shoprank.load_error}")


def test_model_server_down_is_a_503_with_the_reason(online_stack):
    dead = load_settings(model_server_grpc=f"127.0.0.1:{free_port()}", model_timeout_s=0.5)
    with TestClient(create_app(dead)) as client:
        ready = _ready(client)
        assert ready.status_code == 503 and ready.json()["detail"]["reason"] == "not_ready"
        response = client.get("/recommend", headers=bearer("alice"))
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.json()["detail"]["reason"] == "model_server_unavailable"
        assert client.get("/recommend", headers=bearer("stranger")).status_code == 200  # cold start needs no model
        assert 'reason="model_server_unavailable"' in client.get("/metrics").text


class _Hanging(prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):  # noqa: N802
        time.sleep(3)

    GetModelMetadata = Predict


def test_model_server_that_hangs_times_out_into_a_503(online_stack):
    server = grpc.server(futures.ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Hanging(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        hanging = load_settings(model_server_grpc=f"127.0.0.1:{port}", model_timeout_s=0.3)
        with TestClient(create_app(hanging)) as client:
            _ready(client)
            started = time.monotonic()
            response = client.get("/recommend", headers=bearer("alice"))
            assert time.monotonic() - started < 1.5
            assert response.status_code == 503 and response.json()["detail"]["reason"] == "model_server_timeout"
    finally:
        server.stop(0)


def test_feature_store_failure_is_a_503_with_the_reason(online_stack, tmp_path, monkeypatch, capsys):
    settings, _ = online_stack
    home = shutil.copytree(settings.home, tmp_path / "home")
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    broken = load_settings(model_timeout_s=PATIENT_S)
    with TestClient(create_app(broken)) as client:
        assert _ready(client).status_code == 200
        assert client.get("/recommend", headers=bearer("alice")).status_code == 200
        with sqlite3.connect(home / "feast" / "online.db") as db:  # the online store loses its user table
            table = [r[0] for r in db.execute("select name from sqlite_master") if r[0].endswith("user_stats")][0]
            db.execute(f"drop table {table}")
        capsys.readouterr()
        response = client.get("/recommend", headers=bearer("alice"))
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail["reason"] == "feature_store" and "no such table" not in response.text  # the reason, not internals
        assert "503 feature_store" in capsys.readouterr().out  # the internals are in the server's log


def test_not_ready_while_loading_then_ready(online_stack):
    release = threading.Event()

    def slow_factory(settings):
        release.wait(30)
        return OnlineRecommender(settings).load()

    with TestClient(create_app(load_settings(model_timeout_s=PATIENT_S), factory=slow_factory,
                               startup_wait_s=0)) as client:
        assert client.get("/healthz").status_code == 200  # alive while it loads
        loading = client.get("/readyz")
        assert loading.status_code == 503 and "loading" in loading.json()["detail"]["message"]
        assert client.get("/recommend", headers=bearer("alice")).json()["detail"]["reason"] == "not_ready"
        release.set()
        assert _ready(client).status_code == 200
        assert client.get("/recommend", headers=bearer("alice")).status_code == 200


def test_redis_online_store_outage_is_a_503_and_recovers(online_stack, tmp_path, monkeypatch, tiny_model_dir):
    from tests.conftest import redis_server
    from tests.serving.conftest import build_online_home, install_token_keys

    with redis_server(tmp_path / "redis") as (url, proc):
        monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
        build_online_home(tmp_path / "home", tiny_model_dir, online_store=url)
        install_token_keys(tmp_path / "home")
        _, server = online_stack
        settings = load_settings(feast_online_store=url, model_server_grpc=f"127.0.0.1:{server.grpc_port}",
                                 online_timeout_s=0.2, model_timeout_s=PATIENT_S)
        with TestClient(create_app(settings)) as client:
            assert _ready(client).status_code == 200
            assert client.get("/recommend", headers=bearer("alice")).json()["cold_start"] is False
            proc.terminate()
            proc.wait(10)
            started = time.monotonic()
            response = client.get("/recommend", headers=bearer("alice"))
            assert time.monotonic() - started < 2.0
            assert response.status_code == 503 and response.json()["detail"]["reason"] == "feature_store"
            # Redis comes back empty (no persistence here): the API answers again, without a restart
            port = url.rsplit(":", 1)[1]
            again = subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                      "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 10
                while (response := client.get("/recommend", headers=bearer("alice"))).status_code != 200 \
                        and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert response.status_code == 200 and response.json()["cold_start"] is True
            finally:
                again.terminate()
                again.wait(10)


def test_candidates_follow_the_training_settings_of_the_served_version(online_stack, tmp_path, monkeypatch,
                                                                       tiny_model_dir):
    """The served model's card says how its candidates were built; the online path uses that, not its
    own defaults, and follows a new version (and a rollback) without a restart."""
    import json

    from shoprank.models import CARD_FILE
    from shoprank.serving.model_server.client import RestClient
    from shoprank.serving.model_server.server import ModelServer
    from shoprank.serving.registry.push import push_model, rollback, wait_until_available
    from shoprank.storage import open_store

    settings, _ = online_stack
    home = shutil.copytree(settings.home, tmp_path / "home")
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    narrow = shutil.copytree(tiny_model_dir, tmp_path / "narrow")
    card = json.loads((narrow / CARD_FILE).read_text()) if (narrow / CARD_FILE).exists() else {}
    card["training_set"] = {"label_days": 3, "n_popular": 1, "max_user_items": 1, "n_cooc": 0, "n_knn": 0}
    (narrow / CARD_FILE).parent.mkdir(exist_ok=True)
    (narrow / CARD_FILE).write_text(json.dumps(card))
    server = ModelServer(load_settings().models, rest_port=0, grpc_port=0, poll_seconds=0.1).start()
    try:
        local = load_settings(model_server_grpc=f"127.0.0.1:{server.grpc_port}", model_timeout_s=PATIENT_S)
        store = open_store(local.models)
        wait = wait_until_available(RestClient(f"http://127.0.0.1:{server.rest_port}").status, "ranker", 30)
        with TestClient(create_app(local)) as client:
            assert _ready(client).status_code == 200
            wide = client.get("/recommend", params={"k": 100}, headers=bearer("alice")).json()
            assert wide["model_version"] == 1 and len(wide["items"]) > 2
            assert push_model(store, narrow, "ranker", {}, wait_loaded=wait) == 2
            deadline = time.monotonic() + 20
            while client.get("/readyz").json().get("model_version") != 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            now = client.get("/recommend", params={"k": 100}, headers=bearer("alice")).json()
            assert now["model_version"] == 2 and len(now["items"]) == 2  # 1 own item + 1 popular
            rollback(store, "ranker", wait_loaded=wait)
            deadline = time.monotonic() + 20
            while client.get("/readyz").json().get("model_version") != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            again = client.get("/recommend", params={"k": 100}, headers=bearer("alice")).json()
            assert len(again["items"]) == len(wide["items"])
    finally:
        server.stop()


def test_a_key_rotation_switches_the_api_when_the_store_switches(online_stack, tmp_path, monkeypatch,
                                                                  tiny_model_dir):
    """During a rotation the private zone's issuer holds `current` and `next`, and its tokens carry
    the shopper's pseudonym under both. The API holds no key at all: the feature job re-materialises
    with the new key, the API notices the new materialisation and reads the pseudonym under the key it
    was made with, so known shoppers stay known throughout. A token that has no pseudonym under the
    store's key (issued before the rotation, or a key nobody's issuer holds) is served as an unknown
    shopper: a cold start, never an error, and no key id reaches the caller."""
    from pathlib import Path

    from shoprank.features.pseudonymise import PseudonymKey
    from shoprank.identity.tokens import TokenIssuer
    from shoprank.serving.api.recommender import OnlineRecommender
    from tests.serving.conftest import PSEUDONYM_KEY, build_online_home

    settings, _ = online_stack
    home = shutil.copytree(settings.home, tmp_path / "home")
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY")  # the API process has no pseudonymisation key
    signing = Path(load_settings().resolve(load_settings().token_signing_key)).read_bytes()
    current, rotated = PseudonymKey(PSEUDONYM_KEY.encode(), "current"), PseudonymKey(b"the-rotated-key", "next")
    during = TokenIssuer(signing, current, other_keys=(rotated,))  # the issuer during the rotation
    before = TokenIssuer(signing, current)  # a token issued before it began

    def as_(issuer, user):
        return {"Authorization": f"Bearer {issuer.issue(user)}"}

    def fast_refresh(s):
        return OnlineRecommender(s).load(refresh_seconds=0.2)

    with TestClient(create_app(load_settings(model_timeout_s=PATIENT_S), factory=fast_refresh)) as client:
        assert _ready(client).status_code == 200
        assert client.get("/recommend", headers=as_(during, "alice")).json()["cold_start"] is False
        recommender = client.app.state.shoprank.recommender
        assert recommender.key_id() == current.id
        build_online_home(home, tiny_model_dir, key="the-rotated-key", push=False)  # the feature job, new key
        deadline = time.monotonic() + 20
        while recommender.key_id() != rotated.id and time.monotonic() < deadline:
            client.get("/recommend", headers=as_(during, "bob"))
            time.sleep(0.2)
        assert recommender.key_id() == rotated.id
        body = client.get("/recommend", headers=as_(during, "alice")).json()
        assert body["cold_start"] is False and body["personalised"] is True  # still known, by the new pseudonym
        assert body["subject"] == during.subject("alice")  # named (and logged) by the token's subject
        old = client.get("/recommend", headers=as_(before, "alice"))
        assert old.status_code == 200 and old.json()["cold_start"] is True and old.json()["reason"] == "cold_start"
        build_online_home(home, tiny_model_dir, key="a-key-nobody-mounted", push=False)
        deadline = time.monotonic() + 20
        while (response := client.get("/recommend", headers=as_(during, "alice"))).json().get(
                "cold_start") is False and time.monotonic() < deadline:
            time.sleep(0.2)
        assert response.status_code == 200 and response.json()["cold_start"] is True
        assert PseudonymKey(b"a-key-nobody-mounted", "").id not in response.text  # no key ids to a caller
