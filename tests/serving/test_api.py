"""The online API as the shop's front end meets it: a real `shoprank serve-api` process (two
workers) over a real Feast online store and model server, fuzzed over its OpenAPI schema; and, in
process, what happens when the feature store or the model server fails or hangs."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent import futures

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
from tests.serving.conftest import SHOPPERS


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


@pytest.fixture(scope="module")
def api_url(online_stack, tmp_path_factory):
    from shoprank.search.index import SearchIndex, publish_index
    from shoprank.storage import open_store
    from tests.serving.conftest import ITEMS

    settings, _ = online_stack  # a search index too, so every route of the schema answers
    built = SearchIndex.build(ITEMS.assign(title=[f"item {n} tea" for n in range(len(ITEMS))]))
    publish_index(open_store(settings.models), built.save(tmp_path_factory.mktemp("index") / "v"), {})
    port = free_port()
    log = open(tmp_path_factory.mktemp("api-log") / "api.log", "w")  # noqa: SIM115 (the server's, while it runs)
    proc = subprocess.Popen([sys.executable, "-m", "shoprank.cli", "serve-api", "--port", str(port),
                             "--workers", "2"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            stdout=log, stderr=subprocess.STDOUT, text=True)  # a file: a pipe nobody reads fills
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("serve-api did not stop within 10 s of SIGTERM")
        finally:
            log.close()


def test_known_user_gets_ranked_items_with_a_request_id(api_url):
    response = requests.get(f"{api_url}/recommend/alice", params={"k": 5}, timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "alice" and body["model_version"] == 1 and body["cold_start"] is False
    assert len(body["request_id"]) == 32 and response.headers["X-Request-Id"] == body["request_id"]
    items = body["items"]
    assert len(items) == 5 and all(i["source"] == "ranker" for i in items)
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert {"own", "popular"} >= {i["candidate"] for i in items} or "own" in {i["candidate"] for i in items}
    timing = response.headers["Server-Timing"]
    for stage in ("user", "candidates", "features", "predict", "total"):
        assert f"{stage};dur=" in timing
    again = requests.get(f"{api_url}/recommend/alice", params={"k": 5}, timeout=5).json()
    assert [i["item_id"] for i in again["items"]] == [i["item_id"] for i in items]  # stable order
    assert again["request_id"] != body["request_id"]


@pytest.mark.parametrize("user_id", ["someone-new", "ü李-42", "a b", "x" * 128, "1e9", "..."])
def test_unknown_and_odd_ids_are_cold_starts(api_url, user_id):
    response = requests.get(f"{api_url}/recommend/{requests.utils.quote(user_id, safe='')}", params={"k": 3},
                            timeout=5)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user_id and body["cold_start"] is True and body["model_version"] is None
    assert len(body["items"]) == 3 and {i["source"] for i in body["items"]} == {"popular"}


@pytest.mark.parametrize(("path", "status"), [
    ("/recommend/alice?k=0", 422), ("/recommend/alice?k=101", 422), ("/recommend/alice?k=ten", 422),
    ("/recommend/alice?k=-1", 422), (f"/recommend/{'x' * 129}", 422), ("/recommend/%01bad", 422),
    ("/recommend/", 404), ("/recommend/a%2Fb", 404),
])
def test_bad_requests_are_refused_with_the_reason(api_url, path, status):
    response = requests.get(api_url + path, timeout=5)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["detail"][0]["loc"][-1] in ("k", "user_id")


def test_k_up_to_the_limit_returns_every_candidate_at_most(api_url):
    body = requests.get(f"{api_url}/recommend/bob", params={"k": 100}, timeout=5).json()
    ids = [i["item_id"] for i in body["items"]]
    assert 5 <= len(ids) <= 100 and len(ids) == len(set(ids))


def test_metrics_merge_both_workers(api_url):
    for user in SHOPPERS * 4:
        assert requests.get(f"{api_url}/recommend/{user}", timeout=5).status_code == 200
    text = requests.get(f"{api_url}/metrics", timeout=5).text
    served = [line for line in text.splitlines()
              if line.startswith('shoprank_api_requests_total{route="/recommend/{user_id}",status="200"}')]
    assert served and float(served[0].split()[-1]) >= len(SHOPPERS) * 4
    assert 'shoprank_api_stage_seconds_count{stage="predict"}' in text
    assert "shoprank_api_model_version 1.0" in text
    age = [line for line in text.splitlines() if line.startswith("shoprank_api_online_features_age_seconds")]
    assert age and 0 <= float(age[0].split()[-1]) < 3600
    assert "shoprank_api_request_seconds_bucket" in text


def test_openapi_schema_fuzz(api_url):
    """Anything the OpenAPI schema allows gets a documented answer, never a 5xx (schemathesis)."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /recommend/{user_id}", "GET /readyz", "GET /healthz"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate()

        check()


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
        response = client.get("/recommend/alice")
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.json()["detail"]["reason"] == "model_server_unavailable"
        assert client.get("/recommend/stranger").status_code == 200  # cold start needs no model
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
            response = client.get("/recommend/alice")
            assert time.monotonic() - started < 1.5
            assert response.status_code == 503 and response.json()["detail"]["reason"] == "model_server_timeout"
    finally:
        server.stop(0)


def test_feature_store_failure_is_a_503_with_the_reason(online_stack, tmp_path, monkeypatch, capsys):
    settings, _ = online_stack
    home = shutil.copytree(settings.home, tmp_path / "home")
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    broken = load_settings()
    with TestClient(create_app(broken)) as client:
        assert _ready(client).status_code == 200
        assert client.get("/recommend/alice").status_code == 200
        with sqlite3.connect(home / "feast" / "online.db") as db:  # the online store loses its user table
            table = [r[0] for r in db.execute("select name from sqlite_master") if r[0].endswith("user_stats")][0]
            db.execute(f"drop table {table}")
        capsys.readouterr()
        response = client.get("/recommend/alice")
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail["reason"] == "feature_store" and "no such table" not in response.text  # the reason, not internals
        assert "503 feature_store" in capsys.readouterr().out  # the internals are in the server's log


def test_not_ready_while_loading_then_ready(online_stack):
    release = threading.Event()

    def slow_factory(settings):
        release.wait(30)
        return OnlineRecommender(settings).load()

    with TestClient(create_app(load_settings(), factory=slow_factory, startup_wait_s=0)) as client:
        assert client.get("/healthz").status_code == 200  # alive while it loads
        loading = client.get("/readyz")
        assert loading.status_code == 503 and "loading" in loading.json()["detail"]["message"]
        assert client.get("/recommend/alice").json()["detail"]["reason"] == "not_ready"
        release.set()
        assert _ready(client).status_code == 200
        assert client.get("/recommend/alice").status_code == 200


def test_redis_online_store_outage_is_a_503_and_recovers(online_stack, tmp_path, monkeypatch, tiny_model_dir):
    from tests.conftest import redis_server
    from tests.serving.conftest import build_online_home

    with redis_server(tmp_path / "redis") as (url, proc):
        monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
        build_online_home(tmp_path / "home", tiny_model_dir, online_store=url)
        _, server = online_stack
        settings = load_settings(feast_online_store=url, model_server_grpc=f"127.0.0.1:{server.grpc_port}",
                                 online_timeout_s=0.2)
        with TestClient(create_app(settings)) as client:
            assert _ready(client).status_code == 200
            assert client.get("/recommend/alice").json()["cold_start"] is False
            proc.terminate()
            proc.wait(10)
            started = time.monotonic()
            response = client.get("/recommend/alice")
            assert time.monotonic() - started < 2.0
            assert response.status_code == 503 and response.json()["detail"]["reason"] == "feature_store"
            # Redis comes back empty (no persistence here): the API answers again, without a restart
            port = url.rsplit(":", 1)[1]
            again = subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                      "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 10
                while (response := client.get("/recommend/alice")).status_code != 200 and time.monotonic() < deadline:
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
        local = load_settings(model_server_grpc=f"127.0.0.1:{server.grpc_port}")
        store = open_store(local.models)
        wait = wait_until_available(RestClient(f"http://127.0.0.1:{server.rest_port}").status, "ranker", 30)
        with TestClient(create_app(local)) as client:
            assert _ready(client).status_code == 200
            wide = client.get("/recommend/alice", params={"k": 100}).json()
            assert wide["model_version"] == 1 and len(wide["items"]) > 2
            assert push_model(store, narrow, "ranker", {}, wait_loaded=wait) == 2
            deadline = time.monotonic() + 20
            while client.get("/readyz").json().get("model_version") != 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            now = client.get("/recommend/alice", params={"k": 100}).json()
            assert now["model_version"] == 2 and len(now["items"]) == 2  # 1 own item + 1 popular
            rollback(store, "ranker", wait_loaded=wait)
            deadline = time.monotonic() + 20
            while client.get("/readyz").json().get("model_version") != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(client.get("/recommend/alice", params={"k": 100}).json()["items"]) == len(wide["items"])
    finally:
        server.stop()


def test_a_key_rotation_switches_the_api_when_the_store_switches(online_stack, tmp_path, monkeypatch,
                                                                  tiny_model_dir, capsys):
    """The key Secret holds `current` and, during a rotation, `next`. The feature job re-materialises
    with the new key; the API notices the new materialisation and serves with the key it was made
    with, so known users stay known throughout. A store keyed with a key the API lacks is a clear 503."""
    from shoprank.serving.api.recommender import OnlineRecommender
    from tests.serving.conftest import PSEUDONYM_KEY, build_online_home

    settings, _ = online_stack
    home = shutil.copytree(settings.home, tmp_path / "home")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "current").write_text(PSEUDONYM_KEY)
    (secret / "next").write_text("the-rotated-key")
    monkeypatch.setenv("SHOPRANK_HOME", str(home))
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY")
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY_DIR", str(secret))

    def fast_refresh(s):
        return OnlineRecommender(s).load(refresh_seconds=0.2)

    with TestClient(create_app(load_settings(), factory=fast_refresh)) as client:
        assert _ready(client).status_code == 200
        assert client.get("/recommend/alice").json()["cold_start"] is False
        recommender = client.app.state.shoprank.recommender
        assert recommender.key == PSEUDONYM_KEY.encode()
        build_online_home(home, tiny_model_dir, key="the-rotated-key", push=False)  # the feature job, new key
        deadline = time.monotonic() + 20
        while recommender.key != b"the-rotated-key" and time.monotonic() < deadline:
            client.get("/recommend/bob")
            time.sleep(0.2)
        assert recommender.key == b"the-rotated-key"
        assert client.get("/recommend/alice").json()["cold_start"] is False  # still known, new pseudonym
        build_online_home(home, tiny_model_dir, key="a-key-nobody-mounted", push=False)
        deadline = time.monotonic() + 20
        while (response := client.get("/recommend/alice")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert response.status_code == 503 and response.json()["detail"]["reason"] == "feature_store"
        assert "pseudonymisation key" not in response.text  # no key ids to a caller
        assert "materialised with pseudonymisation key" in capsys.readouterr().out  # the operator's story
