"""Promotions move `stable` on purpose: planned first, refused when stale or impossible, and every
move logged with who, why and the lineage of the version now served."""

from __future__ import annotations

import pytest

from shoprank.serving.model_server.versions import read_labels
from shoprank.serving.registry import promotions
from shoprank.serving.registry.push import move_label, push_model
from shoprank.storage import open_store


@pytest.fixture
def models(tmp_path, tiny_model_dir):
    store = open_store(str(tmp_path / "models"))
    for n in range(1, 4):
        push_model(store, tiny_model_dir, "ranker", {"data_interval": [f"2024-0{n}-01", f"2024-0{n + 1}-01"]})
    move_label(store, "ranker", "canary", 3)
    move_label(store, "ranker", "stable", 2)
    return store


def test_each_action_plans_the_move_it_names(models):
    assert promotions.plan(models, "ranker", "rollback") == promotions.Plan("ranker", "rollback", 2, 1)
    assert promotions.plan(models, "ranker", "to_canary") == promotions.Plan("ranker", "to_canary", 2, 3)
    assert promotions.plan(models, "ranker", "to_version", 3).to_version == 3
    assert read_labels(models, "ranker") == {"stable": 2, "canary": 3}  # planning changes nothing


@pytest.mark.parametrize("action, version, message", [
    ("to_version", 9, "has no version 9; versions: \\[1, 2, 3\\]"),
    ("to_version", 2, "stable already serves v2"),
    ("promote", None, "unknown promotion action 'promote'"),
])
def test_an_impossible_plan_says_why(models, action, version, message):
    with pytest.raises(ValueError, match=message):
        promotions.plan(models, "ranker", action, version)


def test_applying_moves_stable_and_logs_who_why_and_the_lineage(models):
    record = promotions.apply(models, promotions.plan(models, "ranker", "to_canary"), actor="airflow:ana:manual__1",
                              reason="canary held up for a day")
    assert read_labels(models, "ranker") == {"stable": 3, "canary": 3}
    promotions.apply(models, promotions.plan(models, "ranker", "rollback"), actor="cli:bo")
    assert read_labels(models, "ranker")["stable"] == 2
    log = promotions.history(models, "ranker")
    assert log[0] == record
    assert [(r["action"], r["from_version"], r["to_version"], r["actor"]) for r in log] == [
        ("to_canary", 2, 3, "airflow:ana:manual__1"), ("rollback", 3, 2, "cli:bo")]
    assert log[0]["reason"] == "canary held up for a day"
    assert log[0]["served_lineage"]["data_interval"] == ["2024-03-01", "2024-04-01"]


def test_a_stale_plan_is_refused_and_changes_nothing(models):
    stale = promotions.plan(models, "ranker", "to_version", 1)
    promotions.apply(models, promotions.plan(models, "ranker", "to_canary"), actor="someone else")
    with pytest.raises(ValueError, match="stale: stable now serves v3"):
        promotions.apply(models, stale, actor="me")
    assert read_labels(models, "ranker")["stable"] == 3 and len(promotions.history(models, "ranker")) == 1


def test_a_version_that_never_loads_keeps_stable_and_logs_nothing(models):
    def never_loads(version: int) -> None:
        raise RuntimeError(f"v{version} failed to load")

    with pytest.raises(RuntimeError, match="v1 failed to load"):
        promotions.apply(models, promotions.plan(models, "ranker", "rollback"), actor="me", wait_loaded=never_loads)
    assert read_labels(models, "ranker")["stable"] == 2 and promotions.history(models, "ranker") == []
