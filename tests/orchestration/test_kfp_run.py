"""Submitting to KFP and waiting for the run, against the local KFP v2beta1 REST stand-in: the
real kfp 2.17.3 Client submits, shoprank's async poller waits, and the Airflow trigger fires once."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from pipelines.nightly import COMPILED
from shoprank.orchestration.kfp_run import RunStatus, find_active_run, run_url, submit_run, wait_for_run
from shoprank.orchestration.params import DEFAULTS, RUN_KEY
from tests.orchestration.kfp_api_standin import Standin, StandinServer


def _wait(url: str, run_id: str, **kw) -> RunStatus:
    return asyncio.run(asyncio.wait_for(wait_for_run(url, run_id, poll_s=0.01, **kw), timeout=30))


def test_the_sdk_submits_the_compiled_pipeline_with_the_run_parameters():
    standin = Standin()
    with StandinServer(standin) as server:
        run_id = submit_run(server.url, COMPILED, {**DEFAULTS.arguments(), RUN_KEY: "manual__x"}, "nightly test")
        status = _wait(server.url, run_id)
    calls = [(method, path.split("?")[0]) for method, path, _ in standin.requests]
    assert calls[:4] == [("GET", "/apis/v2beta1/healthz"), ("GET", "/apis/v2beta1/experiments"),
                         ("POST", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
    created = standin.requests[3][2]
    assert created["experiment_id"] == standin.experiments["shoprank-nightly"]
    spec = created["pipeline_spec"]  # the compiled YAML's two documents: pipeline and platform spec
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "shoprank-nightly"
    assert spec["platform_spec"] == list(yaml.safe_load_all(COMPILED.read_text()))[1]
    assert created["runtime_config"]["parameters"] == {**DEFAULTS.arguments(), RUN_KEY: "manual__x"}
    assert status.state == "SUCCEEDED" and status.done and status.finished_at
    assert status.tasks["evaluate"] == "SUCCEEDED" and status.failed_tasks == []
    assert standin.gets[run_id] == 3  # PENDING, RUNNING, SUCCEEDED: it stopped at the final state


def test_a_canceled_run_is_final_and_a_running_one_is_not():
    standin = Standin(script=["PENDING", "RUNNING", "CANCELING", "CANCELED"])
    with StandinServer(standin) as server:
        run_id = submit_run(server.url, COMPILED, DEFAULTS.arguments(), "canceled")
        status = _wait(server.url, run_id)
    assert status.state == "CANCELED" and status.retryable
    assert standin.gets[run_id] == 4


@pytest.mark.parametrize("failing, retryable", [(["receive"], True), (["train"], True)])
def test_a_failed_pipeline_task_is_worth_a_retry(failing, retryable):
    """The pipeline judges no data (the gate runs before it, in the private zone): a failed pod, or a
    crossing still replicating, may pass on a second try."""
    standin = Standin(script=["RUNNING", "FAILED"], failing_tasks=failing)
    with StandinServer(standin) as server:
        status = _wait(server.url, submit_run(server.url, COMPILED, DEFAULTS.arguments(), "failing"))
    assert status.state == "FAILED" and status.failed_tasks == failing
    assert status.retryable is retryable


def test_an_api_restart_is_waited_out_but_not_forever():
    standin = Standin(errors_before=3)
    with StandinServer(standin) as server:
        run_id = submit_run(server.url, COMPILED, DEFAULTS.arguments(), "flaky")
        assert _wait(server.url, run_id, max_errors=5).state == "SUCCEEDED"
    standin = Standin(errors_before=50)
    with StandinServer(standin) as server:
        run_id = submit_run(server.url, COMPILED, DEFAULTS.arguments(), "down")
        status = _wait(server.url, run_id, max_errors=3)
    assert status.state == "ERROR" and "failed 3 polls in a row" in status.error and "503" in status.error


def test_an_unknown_run_ends_the_wait_with_the_servers_reason():
    with StandinServer(Standin()) as server:
        status = _wait(server.url, "0000-bad")
    assert status.state == "ERROR" and "HTTP 404" in status.error and "Run 0000-bad not found" in status.error


def test_an_unreachable_host_ends_the_wait():
    status = _wait("http://127.0.0.1:9", "r1", max_errors=2)
    assert status.state == "ERROR" and "failed 2 polls" in status.error


def test_the_trigger_round_trips_and_fires_the_runs_final_state():
    from airflow._shared.module_loading import import_string  # as the triggerer imports it

    from shoprank.orchestration.airflow_kfp import KfpRunTrigger

    standin = Standin(script=["PENDING", "RUNNING", "FAILED"], failing_tasks=["train"])
    with StandinServer(standin) as server:
        run_id = submit_run(server.url, COMPILED, DEFAULTS.arguments(), "trigger")
        classpath, kwargs = KfpRunTrigger(server.url, run_id, poll_s=0.01).serialize()
        trigger = import_string(classpath)(**kwargs)  # what the triggerer does with the stored trigger

        async def first_events():
            return [event async for event in trigger.run()]

        events = asyncio.run(asyncio.wait_for(first_events(), timeout=30))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["run_id"] == run_id and payload["state"] == "FAILED"
    assert RunStatus(**payload).failed_tasks == ["train"]


def test_the_run_link_is_the_kfp_ui_route():
    assert run_url("http://kfp.example/", "9e1c") == "http://kfp.example/#/runs/details/9e1c"


def test_a_retry_reattaches_to_the_run_its_earlier_try_left_running():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import TaskDeferred

    from shoprank.orchestration.airflow_kfp import KfpRunOperator

    standin = Standin(script=["RUNNING"])
    with StandinServer(standin) as server:
        earlier = submit_run(server.url, COMPILED, DEFAULTS.arguments(), "shoprank_nightly manual__1")
        finished = Standin(script=["SUCCEEDED"])
        assert find_active_run(server.url, "shoprank_nightly manual__2") is None
        operator = KfpRunOperator(task_id="run_pipeline", host=server.url, package=COMPILED,
                                  arguments=DEFAULTS.arguments())
        pushed = {}
        context = {"run_id": "manual__1", "dag": SimpleNamespace(dag_id="shoprank_nightly"),
                   "ti": SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value}))}
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
    assert deferred.value.trigger.run_id == earlier and pushed == {"kfp_run_id": earlier}
    assert [m for m, path, _ in standin.requests if path == "/apis/v2beta1/runs"].count("POST") == 1
    with StandinServer(finished) as server:  # a finished run with the name is not re-used
        submit_run(server.url, COMPILED, DEFAULTS.arguments(), "shoprank_nightly manual__1")
        assert find_active_run(server.url, "shoprank_nightly manual__1") is None
