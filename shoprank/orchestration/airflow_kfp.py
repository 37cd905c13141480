"""An Airflow operator that runs the nightly pipeline on a KFP host without holding a worker slot.

`KfpRunOperator` submits the compiled pipeline with the run's parameters (or, on a retry, re-attaches
to the run an earlier try submitted if it is still going), pushes the KFP run id to
XCom (the "KFP run" extra link on the task points at the run in the KFP UI from then on), and
defers to `KfpRunTrigger`, which polls the run from the triggerer's event loop. When the run is
final the task resumes, pushes the ranker's blessing verdict (recorded by the evaluate step under
the Airflow run id) and ends with the KFP run's state: success only for SUCCEEDED. A failure of the
gate or the ingest is marked not to be retried; the same data would fail it again.

The trigger lives in this installed module, not in dags/: the triggerer imports it by class path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink, BaseXCom
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from shoprank.orchestration.kfp_run import RunStatus, find_active_run, run_url, submit_run, wait_for_run
from shoprank.orchestration.params import RUN_KEY
from shoprank.orchestration.verdicts import NOT_EVALUATED, read_verdict
from shoprank.settings import load_settings
from shoprank.storage import open_for

RUN_ID_XCOM = "kfp_run_id"
VERDICT_XCOM = "blessing"


class KfpRunTrigger(BaseTrigger):
    """Polls one KFP run until it is final; fires one event with its state and per-task states."""

    def __init__(self, host: str, run_id: str, poll_s: float = 30.0, max_errors: int = 10):
        super().__init__()
        self.host, self.run_id, self.poll_s, self.max_errors = host, run_id, poll_s, max_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"host": self.host, "run_id": self.run_id, "poll_s": self.poll_s, "max_errors": self.max_errors})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        status = await wait_for_run(self.host, self.run_id, poll_s=self.poll_s, max_errors=self.max_errors)
        yield TriggerEvent(status.as_event())


class KfpRunLink(BaseOperatorLink):
    """The task's "KFP run" button: the run's page in the KFP UI, once the run is submitted."""

    name = "KFP run"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        run_id = BaseXCom.get_value(ti_key=ti_key, key=RUN_ID_XCOM)
        return run_url(operator.ui_host or operator.host, run_id) if run_id else ""


class KfpRunOperator(BaseOperator):
    """Run the compiled pipeline `package` on the KFP `host` with `arguments` (templated)."""

    template_fields = ("arguments", "run_name")
    operator_extra_links = (KfpRunLink(),)
    ui_color = "#d7e9f7"

    def __init__(self, *, host: str, package: str | Path, arguments: Any = None,
                 ui_host: str = "", run_name: str = "", experiment: str = "shoprank-nightly",
                 store: str = "", s3_endpoint_url: str = "", poll_s: float = 30.0,
                 run_timeout: timedelta = timedelta(hours=6), **kwargs: Any):
        super().__init__(**kwargs)
        if not host:
            raise ValueError(f"{self.task_id}: KfpRunOperator needs the KFP host (settings.kfp_host)")
        self.host, self.ui_host, self.package = host, ui_host, str(package)
        self.arguments = arguments if arguments is not None else {}  # a dict, or an upstream XComArg
        self.run_name, self.experiment = run_name, experiment
        self.store, self.s3_endpoint_url = store, s3_endpoint_url
        self.poll_s, self.run_timeout = poll_s, run_timeout

    def execute(self, context: Any) -> None:
        run_key = context["run_id"]
        run_name = self.run_name or f"{context['dag'].dag_id} {run_key}"
        run_id = find_active_run(self.host, run_name)
        if run_id:
            self.log.info("re-attaching to KFP run %s, still running from an earlier try", run_id)
        else:
            run_id = submit_run(self.host, Path(self.package), {**self.arguments, RUN_KEY: run_key}, run_name,
                                experiment=self.experiment)
        context["ti"].xcom_push(key=RUN_ID_XCOM, value=run_id)
        self.log.info("submitted KFP run %s with %s: %s", run_id, self.arguments,
                      run_url(self.ui_host or self.host, run_id))
        self.defer(trigger=KfpRunTrigger(self.host, run_id, poll_s=self.poll_s), method_name="execute_complete",
                   timeout=self.run_timeout)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        status = RunStatus(**event)
        verdict = self._verdict(context["run_id"])
        context["ti"].xcom_push(key=VERDICT_XCOM, value=verdict)
        url = run_url(self.ui_host or self.host, status.run_id)
        self.log.info("KFP run %s ended %s; tasks %s; ranker verdict: %s", status.run_id, status.state,
                      status.tasks, verdict)
        if status.state != "SUCCEEDED":
            message = (f"KFP run {url} ended {status.state}; failed tasks: {status.failed_tasks or 'none'}"
                       f"{'; ' + status.error if status.error else ''}")
            if status.state == "ERROR" or status.retryable:
                raise AirflowException(message)
            raise AirflowFailException(message + " (the data or the model was judged: not retried)")
        return {"run_id": status.run_id, "state": status.state, "verdict": verdict, "url": url}

    def _verdict(self, run_key: str) -> str:
        if not self.store:
            return NOT_EVALUATED

        found = read_verdict(open_for(load_settings(s3_endpoint_url=self.s3_endpoint_url), root=self.store), run_key)
        return found["verdict"] if found else NOT_EVALUATED
