"""The hourly look at each running experiment, acted on: a winning canary is promoted through the
promotion path (logged, actor = the experiment), a guardrail breach rolls it back within one look
with `stable` untouched, a run with no difference stops at its maximum duration, every decision is
logged and alerted, and a push to `canary` starts an experiment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shoprank.data.feedback import FEEDBACK
from shoprank.data.records import table_from_records
from shoprank.data.served import EVENTS_PREFIX, REQUESTS, REQUESTS_PREFIX, served_list
from shoprank.evaluation.experiments.config import (
    EXPERIMENT_LOG,
    assign,
    parse_experiment,
    read_experiments,
    write_experiment,
)
from shoprank.serving.model_server.versions import read_labels
from shoprank.serving.registry import promotions
from shoprank.serving.registry.push import move_label, push_model
from shoprank.storage import open_for, write_parquet

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path, monkeypatch, tiny_model_dir):
    from shoprank.settings import load_settings

    for key in list(os.environ):
        if key.startswith("SHOPRANK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPRANK_MODEL_SERVER_URL", "http://127.0.0.1:9")  # none: labels move at once
    settings = load_settings()
    models = open_for(settings, "models")
    for _ in range(2):
        push_model(models, tiny_model_dir, "ranker", {})
    move_label(models, "ranker", "stable", 1)
    move_label(models, "ranker", "canary", 2)
    return settings


def _experiment(**more):
    return parse_experiment({"name": "canary-test", "route": "recommend", "salt": "t", "started_at": START.isoformat(),
                             "arms": [{"name": "control", "label": "stable", "share": 0.5},
                                      {"name": "canary", "label": "canary", "share": 0.5}], **more})


def _serve(settings, experiment, buys: dict[str, float], latency: dict[str, float], shoppers: int = 1200) -> None:
    """Two requests per shopper in the experiment's first hour, an impression each, and purchases at
    the arm's rate per request (price 3), written as the roll writes them."""
    rng = np.random.default_rng(0)
    lists, events = [], []
    for n in range(shoppers):
        user = f"p{n:05d}"
        arm = assign(experiment, user).name
        for r in range(2):
            at = START + timedelta(minutes=10 + r)
            rid = f"{user}-{r}"
            lists.append(served_list(rid, "recommend", at.timestamp(), user, ["i1", "i2"], [2.0, 1.0],
                                     ["ranker", "ranker"], user_key_id="k", model_version=1, experiment=experiment.name,
                                     arm=arm, latency_ms=latency[arm]))
            events.append({"event_id": f"{rid}-i", "event_type": "impression", "user_id": user, "item_id": "i1",
                           "event_time": at.timestamp(), "request_id": rid, "position": 1,
                           "received_at": at.timestamp(), "user_key_id": "k"})
            for b in range(rng.poisson(buys[arm])):
                bought = at + timedelta(minutes=20 + b)
                events.append({"event_id": f"{rid}-b{b}", "event_type": "purchase", "user_id": user, "item_id": "i2",
                               "event_time": bought.timestamp(), "price": 3.0, "quantity": 1,
                               "received_at": bought.timestamp(), "user_key_id": "k"})
    served = open_for(settings, "served")
    hour = f"date={START:%Y-%m-%d}/hour={START:%H}"
    write_parquet(served, f"{REQUESTS_PREFIX}/{hour}/requests.parquet", table_from_records(lists, REQUESTS))
    write_parquet(served, f"{EVENTS_PREFIX}/{hour}/events.parquet", table_from_records(events, FEEDBACK))


def _alerts(settings) -> list[dict]:
    from shoprank.orchestration.alerts import alerts_path

    path = alerts_path(settings)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_winning_canary_is_promoted_through_the_promotion_path_and_logged(settings):
    from shoprank.orchestration.experiments import evaluate_experiments

    models = open_for(settings, "models")
    experiment = _experiment()
    write_experiment(models, experiment)
    _serve(settings, experiment, buys={"control": 0.2, "canary": 0.6}, latency={"control": 20.0, "canary": 22.0})
    [record] = evaluate_experiments(settings, now=START + timedelta(hours=2))
    assert record["action"] == "promote" and record["promotion"] == {"from_version": 1, "to_version": 2,
                                                                    "action": "to_canary"}
    assert read_labels(models, "ranker")["stable"] == 2
    [moved] = promotions.history(models, "ranker")
    assert moved["actor"] == "experiment:canary-test" and "purchases_per_request higher" in moved["reason"]
    [ended] = read_experiments(models)
    assert ended.status == "promoted" and ended.decision == record["reason"]
    logged = [json.loads(line) for line in models.get_bytes(EXPERIMENT_LOG).decode().splitlines()]
    assert [r["action"] for r in logged] == ["promote"]
    assert any(a["kind"] == "experiment" and "promote" in a["summary"] for a in _alerts(settings))
    assert models.exists("experiments/reports/canary-test/report.png")
    assert evaluate_experiments(settings, now=START + timedelta(hours=3)) == []  # ended: not looked at again


def test_a_guardrail_breach_rolls_back_within_one_look_and_stable_stays(settings):
    from shoprank.orchestration.experiments import evaluate_experiments

    models = open_for(settings, "models")
    experiment = _experiment()
    write_experiment(models, experiment)
    _serve(settings, experiment, buys={"control": 0.2, "canary": 0.6}, latency={"control": 20.0, "canary": 800.0})
    [record] = evaluate_experiments(settings, now=START + timedelta(hours=1, minutes=5))
    assert record["action"] == "rollback" and "p99_latency_ms" in record["reason"]
    assert read_labels(models, "ranker")["stable"] == 1 and promotions.history(models, "ranker") == []
    assert read_experiments(models)[0].status == "rolled_back"
    assert any("rollback" in a["summary"] for a in _alerts(settings))


def test_no_difference_stops_at_the_maximum_duration_and_leaves_stable(settings):
    from shoprank.orchestration.experiments import evaluate_experiments

    models = open_for(settings, "models")
    experiment = _experiment(max_hours=24)
    write_experiment(models, experiment)
    _serve(settings, experiment, buys={"control": 0.3, "canary": 0.3}, latency={"control": 20.0, "canary": 20.0})
    [early] = evaluate_experiments(settings, now=START + timedelta(hours=3))
    assert early["action"] == "continue" and read_experiments(models)[0].status == "running"
    [late] = evaluate_experiments(settings, now=START + timedelta(hours=25))
    assert late["action"] == "stop" and "no difference" in late["reason"]
    assert read_labels(models, "ranker")["stable"] == 1 and read_experiments(models)[0].status == "stopped"


def test_a_push_to_canary_starts_an_experiment_that_replaces_a_running_one(settings, tiny_model_dir):
    from shoprank.orchestration.steps import push

    first = push(tiny_model_dir, {}, label="canary", settings=settings, load_timeout_s=1)
    second = push(tiny_model_dir, {}, label="canary", settings=settings, load_timeout_s=1)
    experiments = {e.name: e for e in read_experiments(open_for(settings, "models"))}
    assert experiments[first["experiment"]["experiment"]].status == "stopped"
    current = experiments[second["experiment"]["experiment"]]
    assert current.status == "running" and current.arm("canary").share == settings.canary_share == 0.1
    assert push(tiny_model_dir, {}, settings=settings, load_timeout_s=1).get("experiment") is None  # stable: none
    searched = push(tiny_model_dir, {}, label="canary", settings=settings, load_timeout_s=1, name="search_ranker")
    now = {e.name: e for e in read_experiments(open_for(settings, "models"))}
    on_search = now[searched["experiment"]["experiment"]]
    assert (on_search.route, on_search.model, on_search.status) == ("search", "search_ranker", "running")
    assert now[current.name].status == "running"  # one running experiment per route, each route its own
    assert push(tiny_model_dir, {}, label="canary", settings=settings, load_timeout_s=1,
                name="sequence").get("experiment") is None  # no route of its own to split


def test_status_shows_the_arms_the_interval_and_the_decision(settings):
    from shoprank.orchestration.experiments import credit_share_line, evaluate_experiments, status_lines

    models, served = open_for(settings, "models"), open_for(settings, "served")
    experiment = _experiment()
    write_experiment(models, experiment)
    _serve(settings, experiment, buys={"control": 0.2, "canary": 0.6}, latency={"control": 20.0, "canary": 22.0})
    running = "\n".join(status_lines(experiment, served, models))
    assert "control" in running and "canary" in running and "always-valid p" in running and "now: promote" in running
    evaluate_experiments(settings, now=START + timedelta(hours=2))
    [ended] = read_experiments(models)
    done = "\n".join(status_lines(ended, served, models))
    assert "promoted" in done and "plot:" in done
    assert credit_share_line(40, 60) == "candidate's credit share 60.0% [50.4%, 69.6%] of 100"
