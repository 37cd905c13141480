"""Experiments as the API serves them, in process over the real online stack: each shopper's arm is
served by its own model version, named in a header and in the served-list log; an interleaved arm
records the team of every item; the arms' answers and the events that come back join into per-arm
metrics; an arm whose model fails is answered by `stable` and the failure is logged; an opted-out
shopper is in no experiment."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from shoprank.evaluation.experiments.config import ExperimentError, assign, closed
from shoprank.evaluation.experiments.decision import decide
from shoprank.storage import open_store
from tests.serving.conftest import (
    SHOPPERS,
    api_key,
    api_with_search,
    bearer,
    serve_experiment,
    split_experiment,
    stored,
    subject_of,
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _experiment(name: str, second: dict) -> object:
    return split_experiment(name, second)


@pytest.fixture(scope="module")
def client(online_stack, tmp_path_factory, tiny_model_dir):
    from shoprank.serving.model_server.client import RestClient
    from shoprank.serving.registry.push import push_model, wait_until_available

    settings, server = online_stack
    models = open_store(settings.models)
    wait = wait_until_available(RestClient(f"http://127.0.0.1:{server.rest_port}").status, "ranker", 30)
    canary = push_model(models, tiny_model_dir, "ranker", {}, label="canary", wait_loaded=wait)
    rest = RestClient(f"http://127.0.0.1:{server.rest_port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server reads the new label from models.config by polling
        try:
            if rest.signature("ranker", label="canary")[0] == canary:
                break
        except Exception:  # noqa: BLE001 - not resolvable yet
            pass
        time.sleep(0.1)
    with api_with_search(settings, tmp_path_factory.mktemp("index")) as client:
        client.canary_version = canary
        yield client


def _run(client, experiment) -> dict[str, dict]:
    """Publish `experiment`, make the API serve it, ask for every shopper's list."""
    serve_experiment(client, experiment)
    answers = {}
    for shopper in SHOPPERS:
        response = client.get("/recommend", params={"k": 5}, headers=bearer(shopper))
        assert response.status_code == 200, response.text
        answers[shopper] = {"body": response.json(), "header": response.headers.get("X-Experiment")}
    return answers


def test_each_arm_is_served_by_its_version_named_in_the_header_and_the_log(client):
    experiment = _experiment("versions", {"label": "canary"})
    answers = _run(client, experiment)
    for shopper, answer in answers.items():
        arm = assign(experiment, subject_of(shopper)).name
        assert answer["header"] == f"versions; arm={arm}"
        if not answer["body"]["cold_start"]:
            assert answer["body"]["model_version"] == (client.canary_version if arm == "test" else 1)
    _, requests = stored(client)
    logged = requests.set_index("request_id")
    for shopper, answer in answers.items():
        row = logged.loc[answer["body"]["request_id"]]
        assert (row["experiment"], row["arm"]) == ("versions", assign(experiment, subject_of(shopper)).name)
        assert row["latency_ms"] > 0 and row["fallback"] is None


def test_an_interleaved_arm_logs_the_team_of_each_item_and_its_clicks_are_credited(client):
    experiment = _experiment("mixed", {"interleave": ["stable", "canary"]})
    answers = _run(client, experiment)
    first = answers[SHOPPERS[0]]["body"]
    assert answers[SHOPPERS[0]]["header"] == "mixed; arm=test" and not first["cold_start"]
    clicks = [{"event_id": f"mix-{kind}-{n}", "event_type": kind, "event_time": _now(), "item_id": item["item_id"],
               "request_id": first["request_id"], "position": n + 1}
              for n, item in enumerate(first["items"]) for kind in ("impression", "click")]
    assert client.post("/events", json=clicks, headers=bearer(SHOPPERS[0])).status_code == 200
    events, requests = stored(client)
    row = requests.set_index("request_id").loc[first["request_id"]]
    assert len(row["teams"]) == len(row["items"]) and set(row["teams"]) <= {"a", "b", None}
    assert {"a", "b"} <= set(row["teams"]) or len(row["items"]) < 2
    verdict = decide(experiment, requests[requests["experiment"] == "mixed"], events, pd.Timestamp.now(tz="UTC"))
    assert verdict.arms["test"]["clicks"] == len(first["items"])
    assert verdict.action == "continue"  # five shoppers decide nothing


def test_the_arms_answers_and_their_events_join_into_per_arm_metrics(client):
    experiment = _experiment("joined", {"label": "canary"})
    answers = _run(client, experiment)
    shop = api_key("orders", "events:write", "events:purchase")
    sent = []
    for shopper, answer in answers.items():
        body = answer["body"]
        if not body["items"]:
            continue
        item = body["items"][0]["item_id"]
        sent += [{"event_id": f"j-{shopper}-i", "event_type": "impression", "event_time": _now(), "item_id": item,
                  "request_id": body["request_id"], "position": 1},
                 {"event_id": f"j-{shopper}-c", "event_type": "click", "event_time": _now(), "item_id": item,
                  "request_id": body["request_id"], "position": 1}]
        purchase = {"event_id": f"j-{shopper}-p", "event_type": "purchase", "event_time": _now(), "item_id": item,
                    "user_id": subject_of(shopper), "price": 4.0, "quantity": 2}
        assert client.post("/events", json=[purchase], headers=shop).status_code == 200
    for shopper in answers:
        mine = [e for e in sent if e["event_id"].startswith(f"j-{shopper}-")]
        if mine:
            assert client.post("/events", json=mine, headers=bearer(shopper)).status_code == 200
    time.sleep(0.01)  # purchases after their exposure
    events, requests = stored(client)
    verdict = decide(experiment, requests[requests["experiment"] == "joined"], events, pd.Timestamp.now(tz="UTC"))
    by_arm = {"control": 0, "test": 0}
    for shopper in answers:
        by_arm[assign(experiment, subject_of(shopper)).name] += 1
    for arm, shoppers in by_arm.items():
        assert verdict.arms[arm]["requests"] == shoppers == verdict.arms[arm]["clicks"]
        assert verdict.arms[arm]["purchases"] == shoppers and verdict.arms[arm]["revenue"] == 8.0 * shoppers


def test_an_arm_whose_model_fails_is_answered_by_stable_and_the_failure_is_logged(client):
    experiment = _experiment("failing", {"version": 99})  # no such version: every call of the arm fails
    answers = _run(client, experiment)
    answer = answers[SHOPPERS[0]]["body"]
    assert answer["model_version"] == 1 and answer["items"]
    _, requests = stored(client)
    row = requests.set_index("request_id").loc[answer["request_id"]]
    assert row["arm"] == "test" and row["fallback"]


def test_an_opted_out_shopper_is_in_no_experiment(client):
    experiment = _experiment("optout", {"label": "canary"})
    shopper = SHOPPERS[0]
    response = client.post("/privacy/opt-out", headers=bearer(shopper))
    assert response.status_code in (200, 201, 204), response.text
    client.app.state.shoprank.privacy.refresh()
    try:
        answers = _run(client, experiment)
        assert answers[shopper]["header"] is None and answers[shopper]["body"]["personalised"] is False
    finally:
        client.delete("/privacy/opt-out", headers=bearer(shopper))
        client.app.state.shoprank.privacy.refresh()


def test_an_arm_with_its_own_rules_and_candidate_settings_serves_them_and_the_control_keeps_the_live_ones(client):
    only_c3 = 'version = "c3-only"\n[filters]\nexclude_categories = ["c0", "c1", "c2"]\n'
    ruled = _experiment("ruled", {"label": "stable", "rules": only_c3})
    seen = {"control": set(), "test": set()}
    for shopper, answer in _run(client, ruled).items():
        assert answer["body"]["items"] and not answer["body"]["cold_start"]
        seen[assign(ruled, subject_of(shopper)).name] |= {item["category"] for item in answer["body"]["items"]}
    assert seen["test"] == {"c3"} and seen["control"] - {"c3"}

    # the same shopper on the same arm, with and without the arm's candidate settings
    narrow = _experiment("narrow", {"label": "stable", "candidates": {
        "n_popular": 2, "max_user_items": 0, "n_cooc": 0, "n_knn": 0, "n_sequence": 0}})
    wide = replace(narrow, name="wide", arms=(narrow.arms[0], replace(narrow.arms[1], candidates=None)))
    ids = {run.name: _run(client, run)[SHOPPERS[0]]["body"]["request_id"] for run in (narrow, wide)}
    _, requests = stored(client)
    logged = requests.set_index("request_id")
    scored = {name: dict(zip(logged.loc[i]["candidates"], logged.loc[i]["candidate_sources"], strict=True))
              for name, i in ids.items()}
    assert set(scored["narrow"]) < set(scored["wide"])  # fewer popular, no own, bought-together or knn lists
    assert sum(s == "popular" for s in scored["narrow"].values()) <= 2 < sum(
        s == "popular" for s in scored["wide"].values())


def test_a_document_whose_arm_rules_cannot_apply_is_refused_and_the_experiments_in_hand_keep_serving(client):
    from shoprank.evaluation.experiments.config import write_experiment
    from shoprank.orchestration.experiments import start_experiment

    state = client.app.state.shoprank
    models = open_store(state.settings.models)
    good = _experiment("kept", {"label": "canary"})
    serve_experiment(client, good)
    bad = _experiment("badrules", {"label": "stable", "rules": {"version": "1", "filters": {"price": "cheap"}}})
    with pytest.raises(ExperimentError, match=r"arm 'test'.*'price'"):  # the CLI's path writes nothing
        start_experiment(models, closed(bad, "stopped", "x", datetime.now(UTC)))
    write_experiment(models, closed(good, "stopped", "replaced", datetime.now(UTC)))
    write_experiment(models, bad)  # written past the check, as a hand edit would be
    assert state.experiments.refresh() is False
    assert "badrules" in state.experiments.last_error and "price" in state.experiments.last_error
    chosen = state.experiments.arm_for("recommend", subject_of(SHOPPERS[0]))
    assert chosen is not None and chosen.experiment.name == "kept"
    write_experiment(models, closed(bad, "stopped", "cleaned up", datetime.now(UTC)))
    state.experiments.refresh()
