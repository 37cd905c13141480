"""Airflow DAG `shoprank_nightly`: runs the KFP nightly pipeline for one data interval.

Local profile: the pipeline runs through kfp.local inside the task; cluster profile: the task
submits it to the KFP host and waits. The choice is the settings', not the DAG's. Params (with
their defaults and descriptions from shoprank.orchestration.params, the pipeline's own) let a data
engineer pick the source and override the data interval (for a backfill or the demo).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from shoprank.orchestration.params import NightlyParams, describe

# The data interval comes from the DAG run unless overridden; every other param is the pipeline's.
OVERRIDES = {"interval_start": "Override the data interval start (ISO date; empty: the run's interval).",
             "interval_end": "Override the data interval end (ISO date; empty: the run's interval)."}


def _params() -> dict[str, Param]:
    params = {}
    for name in NightlyParams.__dataclass_fields__:
        default, description, schema = describe(name)
        if name in OVERRIDES:
            params[name] = Param("", type="string", description=OVERRIDES[name])
        else:
            kind = "integer" if isinstance(default, int) else "string"
            params[name] = Param(default, type=kind, description=description, **schema)
    return params


@dag(
    dag_id="shoprank_nightly",
    schedule="@daily",
    start_date=datetime(2000, 1, 1),  # before any data interval we may backfill (Ta Feng: 2000-11)
    catchup=False,
    max_active_runs=1,
    tags=["shoprank", "ml"],
    params=_params(),
)
def shoprank_nightly():
    @task(retries=0)
    def run_pipeline() -> dict:
        from shoprank.orchestration.runner import run_nightly

        context = get_current_context()
        params = dict(context["params"])
        params["interval_start"] = params["interval_start"] or context["data_interval_start"].date().isoformat()
        params["interval_end"] = params["interval_end"] or context["data_interval_end"].date().isoformat()
        arguments = NightlyParams(**{k: params[k] for k in NightlyParams.__dataclass_fields__}).arguments()
        print(f"running the nightly pipeline with {arguments}")
        outcome = run_nightly(arguments)
        return outcome.__dict__

    run_pipeline()


shoprank_nightly()
