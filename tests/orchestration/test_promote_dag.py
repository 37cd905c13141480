"""`shoprank_promote` run through `airflow dags test`: unconfirmed it only shows the plan (apply is
skipped, nothing moves); confirmed it moves `stable` and the move is in the promotion log with the
run that made it; an impossible request fails the plan task naming what is missing."""

from __future__ import annotations

import sqlite3

from shoprank.orchestration.airflow_env import dags_test, migrate
from shoprank.serving.model_server.versions import read_labels
from shoprank.serving.registry import promotions
from shoprank.serving.registry.push import move_label, push_model
from shoprank.settings import load_settings
from shoprank.storage import open_store


def _states(settings) -> dict[str, str]:
    with sqlite3.connect(settings.home / "airflow" / "airflow.db") as db:
        rows = db.execute("select task_id, state from task_instance where dag_id = 'shoprank_promote' "
                          "order by start_date")
        return dict(rows.fetchall())


def test_promote_plans_then_moves_only_when_confirmed(home, tiny_model_dir):
    settings = load_settings()
    models = open_store(settings.models)
    for n in (1, 2, 3):
        push_model(models, tiny_model_dir, "ranker", {"data_interval": [f"2024-0{n}-01", f"2024-0{n + 1}-01"]})
    move_label(models, "ranker", "canary", 3)
    move_label(models, "ranker", "stable", 2)
    migrate(settings)

    dry = dags_test(settings, "shoprank_promote", "2024-05-01", {"action": "to_canary", "reason": "looked good"})
    assert dry.returncode == 0
    assert _states(settings) == {"plan": "success", "apply": "skipped"}
    assert read_labels(models, "ranker")["stable"] == 2 and promotions.history(models, "ranker") == []

    done = dags_test(settings, "shoprank_promote", "2024-05-02",
                     {"action": "to_canary", "reason": "looked good", "confirm": True})
    assert done.returncode == 0
    assert read_labels(models, "ranker")["stable"] == 3
    (record,) = promotions.history(models, "ranker")
    assert (record["from_version"], record["to_version"], record["reason"]) == (2, 3, "looked good")
    assert record["actor"].startswith("airflow:") and ":manual__" in record["actor"]  # who, and which run


def test_an_impossible_promotion_fails_the_plan_and_says_why(home, tiny_model_dir):
    settings = load_settings()
    push_model(open_store(settings.models), tiny_model_dir, "ranker", {"data_interval": ["a", "b"]})
    migrate(settings)
    failed = dags_test(settings, "shoprank_promote", "2024-05-01", {"action": "to_version", "version": 7,
                                                                    "confirm": True})
    assert failed.returncode != 0
    assert _states(settings)["plan"] == "failed"
