"""The nightly DAG in the cluster profile (a KFP host set): `airflow dags test` runs the real DAG,
whose `run_pipeline` is the deferrable KfpRunOperator; it submits to the local KFP API stand-in,
defers, the trigger polls (inline, as `dags test` runs triggers), and the task ends with the run's
state, with the run id, the blessing verdict and the KFP UI link in XCom."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shoprank.orchestration.airflow_env import dags_test, migrate
from shoprank.orchestration.params import RUN_KEY
from shoprank.orchestration.verdicts import record_verdict
from shoprank.settings import load_settings
from shoprank.storage import open_store
from tests.orchestration.kfp_api_standin import Standin, StandinServer

CONF = {"source": "canonical", "source_path": "/data/shop", "interval_start": "2001-01-01",
        "interval_end": "2001-02-01"}


def _xcoms(settings, dag_id: str) -> dict[tuple[str, str], object]:
    with sqlite3.connect(settings.home / "airflow" / "airflow.db") as db:
        rows = db.execute("select task_id, key, value from xcom where dag_id = ?", (dag_id,)).fetchall()
    return {(task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows}


def _task_tries(settings, dag_id: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(settings.home / "airflow" / "airflow.db") as db:
        rows = db.execute("select task_id, state, try_number from task_instance where dag_id = ?", (dag_id,))
        return {task: (state, tries) for task, state, tries in rows}


@pytest.fixture
def cluster_home(home, monkeypatch):
    def start(standin: Standin):
        server = StandinServer(standin).__enter__()
        monkeypatch.setenv("SHOPRANK_KFP_HOST", server.url)
        monkeypatch.setenv("SHOPRANK_KFP_POLL_S", "0.2")
        settings = load_settings()
        migrate(settings)
        return settings, server

    return start


def test_a_succeeded_run_pushes_its_id_verdict_and_link(cluster_home):
    standin = Standin(script=["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"])
    settings, server = cluster_home(standin)
    store = open_store(settings.store)
    # what the pipeline's evaluate step does on the cluster, under the key the operator passed
    standin.on_create = lambda run: record_verdict(store, run["runtime_config"]["parameters"][RUN_KEY],
                                                   {"blessed": True, "reasons": ["beats popularity"]})
    result = dags_test(settings, "shoprank_nightly", "2001-02-01", CONF)
    server.__exit__()
    assert result.returncode == 0
    (run_id,) = standin.runs
    sent = standin.runs[run_id]["runtime_config"]["parameters"]
    assert {k: sent[k] for k in CONF} == CONF and sent[RUN_KEY].startswith("manual__")
    xcom = _xcoms(settings, "shoprank_nightly")
    assert xcom[("run_pipeline", "kfp_run_id")] == run_id
    assert xcom[("run_pipeline", "blessing")] == "blessed"
    assert xcom[("run_pipeline", "_link_KfpRunLink")] == f"{server.url}/#/runs/details/{run_id}"
    assert xcom[("run_pipeline", "return_value")]["state"] == "SUCCEEDED"
    assert _task_tries(settings, "shoprank_nightly")["run_pipeline"] == ("success", 1)
    assert standin.gets[run_id] == 4


def test_a_run_stopped_by_the_gate_fails_the_task_at_once_and_alerts(cluster_home):
    standin = Standin(script=["RUNNING", "FAILED"], failing_tasks=["validate"])
    settings, server = cluster_home(standin)
    result = dags_test(settings, "shoprank_nightly", "2001-02-01", CONF)
    server.__exit__()
    assert result.returncode != 0
    (run_id,) = standin.runs
    state, tries = _task_tries(settings, "shoprank_nightly")["run_pipeline"]
    assert state == "failed" and tries == 1  # the same data would fail the gate again: no retry
    xcom = _xcoms(settings, "shoprank_nightly")
    assert xcom[("run_pipeline", "blessing")] == "not evaluated"
    alerts = [json.loads(line) for line in (Path(settings.home) / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [a["task_id"] for a in alerts] == ["run_pipeline"]
    assert run_id in alerts[0]["error"] and "validate" in alerts[0]["error"]
