"""The nightly DAG in the cluster profile (a KFP host set): `airflow dags test` runs the real DAG.
Its private tasks stage, gate, publish and pseudonymise a small synthetic shop; its `run_pipeline`
is the deferrable KfpRunOperator, which submits to the local KFP API stand-in with the crossing's
key, defers, the trigger polls (inline, as `dags test` runs triggers), and the task ends with the
run's state, with the run id, the blessing verdict and the KFP UI link in XCom."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shoprank.features.crossing import latest_crossing
from shoprank.orchestration.airflow_env import dags_test, migrate
from shoprank.orchestration.params import CROSSING_KEY, PRIVATE_PARAMS, RUN_KEY
from shoprank.orchestration.verdicts import record_verdict
from shoprank.settings import load_settings
from shoprank.storage import open_store
from tests.orchestration.kfp_api_standin import Standin, StandinServer

START, END = "2024-01-01", "2024-01-15"


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    from shoprank.data.sources.synthetic import write_synthetic

    folder = tmp_path_factory.mktemp("shop")
    write_synthetic(folder, start=START, days=14, n_events=20_000, n_users=800, n_items=600)
    return folder


def conf(shop: Path) -> dict:
    return {"source": "canonical", "source_path": str(shop), "interval_start": START, "interval_end": END}


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


def test_a_succeeded_run_pushes_its_id_verdict_and_link(cluster_home, shop):
    standin = Standin(script=["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"])
    settings, server = cluster_home(standin)
    store = open_store(settings.store)
    # what the pipeline's evaluate step does on the cluster, under the key the operator passed
    standin.on_create = lambda run: record_verdict(store, run["runtime_config"]["parameters"][RUN_KEY],
                                                   {"blessed": True, "reasons": ["beats popularity"]})
    result = dags_test(settings, "shoprank_nightly", END, conf(shop))
    server.__exit__()
    assert result.returncode == 0
    (run_id,) = standin.runs
    sent = standin.runs[run_id]["runtime_config"]["parameters"]
    assert sent[CROSSING_KEY] == latest_crossing(store, "nightly") and sent[RUN_KEY].startswith("manual__")
    assert not set(sent) & set(PRIVATE_PARAMS)  # the source and its path stay with the private tasks
    xcom = _xcoms(settings, "shoprank_nightly")
    assert xcom[("run_pipeline", "kfp_run_id")] == run_id
    assert xcom[("run_pipeline", "blessing")] == "blessed"
    assert xcom[("run_pipeline", "_link_KfpRunLink")] == f"{server.url}/#/runs/details/{run_id}"
    assert xcom[("run_pipeline", "return_value")]["state"] == "SUCCEEDED"
    assert _task_tries(settings, "shoprank_nightly")["run_pipeline"] == ("success", 1)
    assert standin.gets[run_id] == 4


def test_a_batch_the_gate_refuses_fails_validate_at_once_and_nothing_is_submitted(cluster_home, shop, tmp_path):
    import shutil

    import pandas as pd

    broken = shutil.copytree(shop, tmp_path / "broken")
    part = next(next((broken / "events").iterdir()).glob("*.parquet"))
    frame = pd.read_parquet(part)
    frame.loc[frame.index[:200], "price"] = -5.0
    frame.to_parquet(part, index=False)
    standin = Standin(script=["RUNNING", "SUCCEEDED"])
    settings, server = cluster_home(standin)
    result = dags_test(settings, "shoprank_nightly", END, conf(broken))
    server.__exit__()
    assert result.returncode != 0 and standin.runs == {}  # the pipeline never started
    tries = _task_tries(settings, "shoprank_nightly")
    assert tries["validate"] == ("failed", 1)  # the same data would fail the gate again: no retry
    assert tries["run_pipeline"][0] == "upstream_failed"
    alerts = [json.loads(line) for line in (Path(settings.home) / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [a["task_id"] for a in alerts] == ["validate"]
    assert "the gate refused the batch" in alerts[0]["error"] and "price" in alerts[0]["error"]
