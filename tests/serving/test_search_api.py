"""GET /search on a real stack: Feast online store, a published index, a search ranker SavedModel
pushed to the TF-Serving-compatible model server, the app in-process."""

import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shoprank.evaluation.experiments.config import assign
from shoprank.search import MAX_QUERY_CHARS, SEARCH_MODEL_NAME
from shoprank.search.index import SearchIndex, publish_index
from shoprank.serving.api.app import create_app
from shoprank.settings import load_settings
from shoprank.storage import open_store
from tests.serving.conftest import (
    ITEMS,
    SHOPPERS,
    api_key,
    bearer,
    serve_experiment,
    split_experiment,
    stored,
    subject_of,
    wait_labelled,
)

TITLES = {0: "Lipton green tea", 3: "earl grey tea", 4: "oolong tea leaves", 6: "jasmine tea 茉莉花茶",
          7: "dark chocolate", 9: "milk chocolate", 12: "green tea matcha"}


def catalogue(extra: pd.DataFrame | None = None) -> pd.DataFrame:
    items = ITEMS.copy()
    items["title"] = [TITLES.get(n, f"thing {n}") for n in range(len(items))]
    items["brand"] = ["Lipton" if n == 0 else None for n in range(len(items))]
    return pd.concat([items, extra]) if extra is not None else items


def tiny_search_ranker(folder):
    """Trained for an epoch, exported, then infra-validated as the pipeline does (warm-up requests
    written, so the model server loads it warm)."""
    from shoprank.models.card import ModelCard
    from shoprank.models.export import export_saved_model
    from shoprank.models.train import TrainConfig, train_ranker
    from shoprank.search.features import SEARCH_NUMERIC
    from shoprank.search.training import search_inputs
    from shoprank.serving.registry.infra_validate import infra_validate

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({name: rng.random(n) for name in SEARCH_NUMERIC})
    frame["item_category"] = [f"c{k}" for k in rng.integers(0, 4, n)]
    frame["label"] = (frame["ui_count"] + frame["q_bm25"] + rng.normal(0, 0.3, n) > 1.0).astype(int)
    frame["list_id"] = np.arange(n) // 20  # one query's candidates per list, as the search training set has them
    result = train_ranker(frame, frame.head(100), TrainConfig(epochs=1, batch_size=128), verbose=0,
                          features=(SEARCH_NUMERIC, ["item_category"]))
    exported = export_saved_model(result.model, folder, ModelCard(model=SEARCH_MODEL_NAME))
    infra_validate(exported, SEARCH_MODEL_NAME, search_inputs(frame.head(16)))
    return exported


@pytest.fixture(scope="module")
def search_client(online_stack, tmp_path_factory):
    from shoprank.serving.model_server.client import RestClient
    from shoprank.serving.registry.push import push_model, wait_until_available

    settings, server = online_stack
    models = open_store(settings.models)
    built = tmp_path_factory.mktemp("index")
    publish_index(models, SearchIndex.build(catalogue(), {"i03": 40.0, "i04": 30.0}).save(built / "v"), {})
    wait = wait_until_available(RestClient(f"http://127.0.0.1:{server.rest_port}").status, SEARCH_MODEL_NAME, 30)
    push_model(models, tiny_search_ranker(tmp_path_factory.mktemp("sr") / "m"), SEARCH_MODEL_NAME, {},
               wait_loaded=wait)
    wait_labelled(f"http://127.0.0.1:{server.rest_port}", SEARCH_MODEL_NAME)
    with TestClient(create_app(load_settings(model_timeout_s=5.0))) as client:  # not a latency test
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield client, models, built


def test_anonymous_search_is_lexical_and_says_so(search_client):
    client, _, _ = search_client
    body = client.get("/search", params={"q": "Tea"}).json()
    ids = [item["item_id"] for item in body["items"]]
    assert set(ids) == {"i00", "i03", "i04", "i06", "i12"}
    assert body["personalised"] is False and body["reason"] == "anonymous" and body["index_version"] == 1
    assert body["subject"] is None
    assert {item["signal"] for item in body["items"]} <= {"lexical", "popular"}
    assert body["request_id"] and body["matched"] == 5
    assert client.get("/readyz").json()["search"]["index_version"] >= 1  # search does not gate readiness


def test_a_known_shopper_gets_the_search_rankers_order(search_client):
    client, _, _ = search_client
    response = client.get("/search", params={"q": "tea", "k": 3}, headers=bearer("alice"))
    body = response.json()
    assert response.status_code == 200 and body["personalised"] is True and body["reason"] is None, body["reason"]
    assert body["subject"] == subject_of("alice")  # the pseudonym, never the raw id
    assert body["model_version"] == 1 and len(body["items"]) == 3
    assert all(item["signal"] == "ranker" for item in body["items"])
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert "predict" in response.headers["Server-Timing"]


def test_when_the_nightly_found_a_rule_better_known_shoppers_get_it_and_are_told(search_client):
    import json

    from shoprank.layout import SEARCH_SERVING_KEY

    client, models, _ = search_client
    live = client.app.state.shoprank.searcher.live
    models.put_bytes(SEARCH_SERVING_KEY, json.dumps({"serve": "own_frequency", "why": "test",
                                                     "metric": "ndcg@10", "value": 0.58}).encode())
    live.refresh()
    try:
        body = client.get("/search", params={"q": "tea", "k": 5}, headers=bearer("alice")).json()
        assert body["personalised"] is True and body["reason"] == "rule_own_frequency"
        assert body["model_version"] is None  # no model call
        signals = [item["signal"] for item in body["items"]]
        owned = {"i00", "i03", "i04"}  # alice's tea items (her favourites are i00-i05)
        assert {i["item_id"] for i in body["items"][:3]} == owned and signals[:3] == ["own_frequency"] * 3
        assert "own_frequency" not in signals[3:]
        anonymous = client.get("/search", params={"q": "tea"}).json()
        assert anonymous["reason"] == "anonymous"
        assert {i["signal"] for i in anonymous["items"]} <= {"lexical", "popular"}
        models.put_bytes(SEARCH_SERVING_KEY, json.dumps({"serve": "lexical", "why": "test"}).encode())
        live.refresh()
        body = client.get("/search", params={"q": "tea"}, headers=bearer("alice")).json()
        assert body["personalised"] is False and body["reason"] == "rule_lexical"
        models.put_bytes(SEARCH_SERVING_KEY, b"{not json")
        live.refresh()  # a broken decision keeps the last good one
        assert client.get("/search", params={"q": "tea"}, headers=bearer("alice")).json()["reason"] == "rule_lexical"
    finally:
        models.put_bytes(SEARCH_SERVING_KEY, json.dumps({"serve": "ranker", "why": "test"}).encode())
        live.refresh()
    assert client.get("/search", params={"q": "tea"}, headers=bearer("alice")).json()["reason"] is None


def test_an_unknown_shopper_is_answered_without_personalisation(search_client):
    client, _, _ = search_client
    body = client.get("/search", params={"q": "tea"}, headers=bearer("nobody-we-know")).json()
    assert body["personalised"] is False and body["reason"] == "unknown_user" and len(body["items"]) == 5


def test_a_feature_store_outage_degrades_search_to_the_lexical_order(search_client, monkeypatch):
    from shoprank.serving.api.recommender import FeatureStoreError

    client, _, _ = search_client
    recommender = client.app.state.shoprank.recommender

    def broken(key):
        raise FeatureStoreError("online store read failed: ConnectionError: refused")

    monkeypatch.setattr(recommender.context.shoppers, "row", broken)  # every read of a user's row goes through it
    body = client.get("/search", params={"q": "tea"}, headers=bearer("alice")).json()
    assert body["personalised"] is False and body["reason"] == "feature_store" and len(body["items"]) == 5
    assert client.get("/recommend", headers=bearer("alice")).status_code == 503  # recommendations cannot degrade


def test_no_match_is_an_empty_list_with_a_reason(search_client):
    client, _, _ = search_client
    for query in ("bicycle", "jane@example.com", "13800138000"):
        response = client.get("/search", params={"q": query}, headers=bearer("alice"))
        assert response.status_code == 200
        assert response.json()["items"] == [] and response.json()["reason"] == "no_match"


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_an_empty_query_is_a_422(search_client, query):
    client, _, _ = search_client
    response = client.get("/search", params={"q": query})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "q"]
    assert client.get("/search").status_code == 422


def test_the_length_limit_is_named(search_client):
    client, _, _ = search_client
    assert client.get("/search", params={"q": "tea " + "x" * (MAX_QUERY_CHARS - 4)}).status_code == 200
    response = client.get("/search", params={"q": "t" * (MAX_QUERY_CHARS + 1)})
    assert response.status_code == 422 and str(MAX_QUERY_CHARS) in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize("query", ["tea'; DROP TABLE items; --", "(.*)+[tea", "tea\x00\x01\x7f", "🙂 tea 🙂",
                                   "ｔｅａ", "%00%27tea", "\u200btea\u200d", "茉莉", "\\d+tea$"])
def test_odd_queries_never_crash(search_client, query):
    client, _, _ = search_client
    for user in (None, "alice"):
        response = client.get("/search", params={"q": query}, headers=bearer(user) if user else {})
        assert response.status_code == 200, response.text
        assert "i06" in [i["item_id"] for i in response.json()["items"]] or query != "茉莉"
        assert response.json()["items"] or response.json()["reason"] == "no_match"


def test_bad_k_and_subject_are_422(search_client):
    client, _, _ = search_client
    assert client.get("/search", params={"q": "tea", "k": 0}).status_code == 422
    assert client.get("/search", params={"q": "tea", "k": 101}).status_code == 422
    reader = api_key("shop-backend", "read")
    for subject in ("a\x01b", "alice", subject_of("alice").upper(), subject_of("alice") + "0"):  # pseudonyms only
        response = client.get("/search", params={"q": "tea", "subject": subject}, headers=reader)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "subject"]


def test_a_server_to_server_reader_searches_for_a_shopper_it_names_by_pseudonym(search_client):
    client, _, _ = search_client
    body = client.get("/search", params={"q": "tea", "k": 3, "subject": subject_of("alice")},
                      headers=api_key("shop-backend", "read")).json()
    mine = client.get("/search", params={"q": "tea", "k": 3}, headers=bearer("alice")).json()
    assert body["subject"] == mine["subject"] == subject_of("alice") and body["personalised"] is True
    assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in mine["items"]]


def test_a_new_item_is_findable_after_the_next_index_and_a_broken_version_is_skipped(search_client, tmp_path):
    client, models, _ = search_client
    new = pd.DataFrame({"item_id": ["i99"], "category": ["c9"], "brand": ["Kyoto"], "price": [9.0],
                        "title": ["bamboo matcha whisk"]})
    assert client.get("/search", params={"q": "whisk"}).json()["reason"] == "no_match"
    assert publish_index(models, SearchIndex.build(catalogue(new)).save(tmp_path / "v2"), {}) == 2
    live = client.app.state.shoprank.searcher.live
    live.refresh()
    body = client.get("/search", params={"q": "whisk"}, headers=bearer("alice")).json()
    assert [i["item_id"] for i in body["items"]] == ["i99"] and body["index_version"] == 2
    # a version whose files are damaged is never served; v2 keeps answering
    broken = SearchIndex.build(catalogue()).save(tmp_path / "v3")
    (broken / "items.parquet").write_bytes(b"not parquet")
    assert publish_index(models, broken, {}) == 3
    live.refresh()
    assert live.last_error and "v3" in live.last_error
    assert client.get("/search", params={"q": "whisk"}).json()["index_version"] == 2


def test_without_a_search_ranker_a_known_shopper_gets_the_lexical_order(search_client, tmp_path):
    _, models, _ = search_client
    good = publish_index(models, SearchIndex.build(catalogue()).save(tmp_path / "good"), {})
    broken = SearchIndex.build(catalogue()).save(tmp_path / "broken")
    (broken / "bm25" / "params.index.json").write_text("{")
    newest = publish_index(models, broken, {})
    dead = load_settings(model_server_grpc="127.0.0.1:9", model_timeout_s=0.3)
    with TestClient(create_app(dead)) as client:
        response = client.get("/search", params={"q": "tea"}, headers=bearer("alice"))
        body = response.json()
        assert response.status_code == 200 and body["personalised"] is False
        assert body["reason"].startswith("ranker_") and len(body["items"]) >= 3
        # a fresh process skips the broken newest index and serves the one before it
        assert body["index_version"] == good and newest == good + 1
        assert f"v{newest}" in client.app.state.shoprank.searcher.live.last_error


@pytest.fixture(scope="module")
def search_canary(search_client, online_stack, tmp_path_factory):
    """A second search ranker under `canary`, resolvable by the model server."""
    from shoprank.serving.model_server.client import RestClient
    from shoprank.serving.registry.push import push_model, wait_until_available

    _, models, _ = search_client
    rest = RestClient(f"http://127.0.0.1:{online_stack[1].rest_port}")
    version = push_model(models, tiny_search_ranker(tmp_path_factory.mktemp("canary") / "m"), SEARCH_MODEL_NAME, {},
                         label="canary", wait_loaded=wait_until_available(rest.status, SEARCH_MODEL_NAME, 30))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server reads the new label from models.config by polling
        try:
            if rest.signature(SEARCH_MODEL_NAME, label="canary")[0] == version:
                break
        except Exception:  # noqa: BLE001 - not resolvable yet
            pass
        time.sleep(0.1)
    return version


def _searched(client, experiment) -> dict[str, dict]:
    serve_experiment(client, experiment)
    out = {}
    for shopper in SHOPPERS:
        response = client.get("/search", params={"q": "tea", "k": 5}, headers=bearer(shopper))
        assert response.status_code == 200, response.text
        out[shopper] = {"body": response.json(), "header": response.headers.get("X-Experiment"),
                        "arm": assign(experiment, subject_of(shopper)).name}
    return out


def test_a_search_experiment_serves_each_arm_its_ranker_and_logs_the_arm(search_client, search_canary):
    client, _, _ = search_client
    experiment = split_experiment("search-versions", {"label": "canary"}, route="search")
    answers = _searched(client, experiment)
    _, requests = stored(client)
    logged = requests.set_index("request_id")
    for answer in answers.values():
        body = answer["body"]
        assert answer["header"] == f"search-versions; arm={answer['arm']}" and body["personalised"]
        assert body["model_version"] == (search_canary if answer["arm"] == "test" else 1)
        row = logged.loc[body["request_id"]]
        assert (row["route"], row["experiment"], row["arm"]) == ("search", "search-versions", answer["arm"])
    anonymous = client.get("/search", params={"q": "tea"})
    assert anonymous.headers.get("X-Experiment") is None  # no pseudonym: in no experiment


def test_an_interleaved_search_arm_records_each_hits_team(search_client, search_canary):
    client, _, _ = search_client
    experiment = split_experiment("search-mixed", {"interleave": ["stable", "canary"]}, route="search")
    first = _searched(client, experiment)[SHOPPERS[0]]["body"]
    _, requests = stored(client)
    row = requests.set_index("request_id").loc[first["request_id"]]
    assert len(row["teams"]) == len(first["items"]) >= 2 and set(row["teams"]) == {"a", "b"}
    assert {item["signal"] for item in first["items"]} == {"ranker"}


def test_a_search_control_follows_the_nightlys_rule_while_the_canary_arm_is_served_its_ranker(search_client,
                                                                                             search_canary):
    import json

    from shoprank.layout import SEARCH_SERVING_KEY

    client, models, _ = search_client
    live = client.app.state.shoprank.searcher.live
    experiment = split_experiment("search-vs-rule", {"label": "canary"}, route="search")
    models.put_bytes(SEARCH_SERVING_KEY, json.dumps({"serve": "own_frequency", "why": "test"}).encode())
    live.refresh()
    try:
        answers = _searched(client, experiment)
    finally:
        models.put_bytes(SEARCH_SERVING_KEY, json.dumps({"serve": "ranker", "why": "test"}).encode())
        live.refresh()
    for answer in answers.values():
        body = answer["body"]
        if answer["arm"] == "test":
            assert body["reason"] is None and body["model_version"] == search_canary
        else:
            assert body["reason"] == "rule_own_frequency" and body["model_version"] is None


def test_a_search_arm_with_fewer_lexical_candidates_ranks_only_those(search_client, search_canary):
    client, _, _ = search_client
    experiment = split_experiment("search-narrow", {"label": "stable", "candidates": {"lexical_n": 2}},
                                  route="search")
    for answer in _searched(client, experiment).values():
        items = answer["body"]["items"]
        if answer["arm"] == "test":  # the 2 best lexical matches and the shopper's own matching items
            assert 2 <= len(items) < 5, items
        else:  # every one of the five matches
            assert len(items) == 5, items
