"""Airflow DAG `shoprank_nightly`: runs the KFP nightly pipeline for one data interval.

Local profile: the pipeline runs through kfp.local inside the task. Cluster profile (`kfp_host`
set): `KfpRunOperator` submits it to KFP and defers, so no worker slot is held while it runs; the
task's "KFP run" link opens the run. The choice is the settings', not the DAG's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    get_current_context,
    task,
)

from shoprank.orchestration.alerts import FailureAlert, deadline_missed
from shoprank.orchestration.params import NightlyParams, describe
from shoprank.orchestration.zone_runner import PRIVATE_QUEUE
from shoprank.settings import load_settings

SETTINGS = load_settings()
#: The DAG's private tasks and the zone runner's tasks they run.
TASKS = {"ingest": "stage", "validate": "validate", "publish": "publish", "pseudonymise": "pseudonymise_night"}
#: Failures the same data would repeat: the gate's verdict, input that cannot be read, a crossing refused.
NOT_RETRIED = {"GateFailed", "InputError", "CrossingError"}
# The data interval comes from the DAG run unless overridden; every other param is the pipeline's.
OVERRIDES = {"interval_start": "Override the data interval start (ISO date; empty: the run's interval).",
             "interval_end": "Override the data interval end (ISO date, exclusive; empty: the run's interval)."}

DOC = f"""
### Nightly retraining

**Private zone** (queue `{PRIVATE_QUEUE}`, the edge workers; locally each in its own process with
the private settings): ingest → **validation gate** → publish to `curated/` → pseudonymise into
the night's crossing (`features/crossing/nightly/`).

**Public zone** (`run_pipeline`, the KFP pipeline from the crossing's manifest): snapshots →
neighbours → materialise (Feast) → training set → train → evaluate against the baselines and
production → (if blessed) infra-validate → push to the model server; the search index and search
ranker beside it.

- **Where it runs:** {"KFP at `" + SETTINGS.kfp_host + "` (the task defers; its *KFP run* link opens the run)"
                      if SETTINGS.kfp_host else "kfp.local inside the task (local profile)"}.
- **Params:** `source`, `source_path`, the interval and `n_snapshots` go to the private tasks, the
  others to the pipeline; leave the interval empty to use the run's data interval (a backfill does).
- **Failures:** the gate or a broken ingest fail at once (the same data would fail again); other
  failures are retried twice. Every final failure, and a run not done {SETTINGS.nightly_deadline_h:g} h after it
  was queued, writes an alert (`{SETTINGS.home}/alerts/alerts.jsonl`
  {"and the `" + SETTINGS.alert_connection + "` webhook" if SETTINGS.alert_connection else "and the task log"}).
- **XCom:** `run_pipeline` returns the run id, its state and the ranker's blessing verdict.
"""


def _params() -> dict[str, Param]:
    params = {}
    for name in NightlyParams.__dataclass_fields__:
        default, description, schema = describe(name)
        if name in OVERRIDES:
            params[name] = Param("", type="string", title=name, description=OVERRIDES[name])
        else:
            kind = "integer" if isinstance(default, int) else "string"
            params[name] = Param(default, type=kind, title=name, description=description, **schema)
    return params


@dag(
    dag_id="shoprank_nightly",
    # A run covers the day before it ([yesterday, today)): Airflow 3 reads a bare cron string as a
    # point in time with no data interval, which a nightly over "the day's data" cannot use.
    schedule=(CronDataIntervalTimetable(SETTINGS.nightly_schedule, timezone="UTC")
              if SETTINGS.nightly_schedule else None),
    start_date=datetime(2000, 1, 1),  # before any data interval we may backfill (Ta Feng: 2000-11)
    catchup=False,
    max_active_runs=1,
    tags=["shoprank", "ml"],
    params=_params(),
    doc_md=DOC,
    default_args={"on_failure_callback": FailureAlert(), "retries": 2, "retry_delay": timedelta(minutes=5),
                  "retry_exponential_backoff": 2.0},
    deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                           interval=timedelta(hours=SETTINGS.nightly_deadline_h),
                           callback=AsyncCallback(deadline_missed, kwargs={"alert": "nightly deadline"}))
    if SETTINGS.nightly_deadline_h > 0 else None,  # 0: no deadline (see airflow_env.dags_test)
)
def shoprank_nightly():
    @task(retries=0)
    def resolve_arguments() -> dict:
        """The pipeline's arguments: the params, the interval falling back to the run's."""
        from shoprank.orchestration.params import run_arguments

        context = get_current_context()
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        arguments = run_arguments(dict(context["params"]), start.date().isoformat() if start else "",
                                  end.date().isoformat() if end else "")
        if not arguments["interval_start"] or arguments["interval_start"] >= arguments["interval_end"]:
            raise ValueError(f"no data interval to run on: the run has {start}..{end} and the params "
                             f"interval_start/interval_end are empty; set both (ISO dates)")
        return arguments

    arguments = resolve_arguments()
    crossing = private_stage(arguments)
    if SETTINGS.kfp_host:
        from pipelines.nightly import COMPILED
        from shoprank.orchestration.airflow_kfp import KfpRunOperator

        @task(retries=0)
        def pipeline_arguments(arguments: dict, crossing: dict) -> dict:
            """The public pipeline's arguments: the params it reads and the crossing it starts from."""
            from shoprank.orchestration.params import pipeline_arguments as public_arguments

            return public_arguments(arguments, crossing["crossing"])

        KfpRunOperator(task_id="run_pipeline", host=SETTINGS.kfp_host, ui_host=SETTINGS.kfp_ui_host,
                       package=COMPILED, arguments=pipeline_arguments(arguments, crossing),
                       store=SETTINGS.store, s3_endpoint_url=SETTINGS.s3_endpoint_url, poll_s=SETTINGS.kfp_poll_s,
                       run_timeout=timedelta(hours=SETTINGS.nightly_deadline_h or 24))
    else:
        @task(retries=1)
        def run_pipeline(arguments: dict, crossing: dict) -> dict:
            """The pipeline through kfp.local; a crash halfway may pass on a retry."""
            from pipelines.runner import run_nightly
            from shoprank.orchestration.params import pipeline_arguments as public_arguments

            public = public_arguments(arguments, crossing["crossing"])
            print(f"running the nightly pipeline with {public}")
            outcome = run_nightly(public, run_key=get_current_context()["run_id"])
            print(f"ranker verdict: {outcome.verdict}")
            return outcome.__dict__

        run_pipeline(arguments, crossing)


def private_stage(arguments):
    """The private tasks of a night, in order, on the private queue: each runs in the private zone
    (`zone_runner.run_private`); what the last one returns is the crossing the pipeline starts from."""

    def private_task(name: str, kwargs_of, retries: int = 1):
        @task(task_id=name, queue=PRIVATE_QUEUE, retries=retries)
        def run(arguments: dict, _after: dict | None = None) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from shoprank.orchestration.zone_runner import PrivateTaskFailed, run_private

            try:
                return run_private(TASKS[name], **kwargs_of(arguments))
            except PrivateTaskFailed as err:
                if err.kind in NOT_RETRIED:
                    raise AirflowFailException(f"{err} (the same data would fail again: not retried)") from err
                raise

        return run

    interval = lambda a: {"start": a["interval_start"], "end": a["interval_end"]}  # noqa: E731
    staged = private_task("ingest", lambda a: {"source": a["source"], "source_path": a["source_path"],
                                               **interval(a)})(arguments)
    gated = private_task("validate", interval)(arguments, staged)
    published = private_task("publish", interval)(arguments, gated)
    return private_task("pseudonymise", lambda a: {"n_snapshots": a["n_snapshots"], "source": a["source"],
                                                   **interval(a)})(arguments, published)


shoprank_nightly()
