"""Airflow DAG `shoprank_nightly`: runs the KFP nightly pipeline for one data interval.

Local profile: the pipeline runs through kfp.local inside the task; cluster profile: the task
submits it to the KFP host and waits. The choice is the settings', not the DAG's. Params let a
data engineer pick the source and override the data interval (for a backfill or the demo).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

SOURCES = ["tafeng", "rees46", "synthetic", "canonical"]


@dag(
    dag_id="shoprank_nightly",
    schedule="@daily",
    start_date=datetime(2000, 1, 1),  # before any data interval we may backfill (Ta Feng: 2000-11)
    catchup=False,
    max_active_runs=1,
    tags=["shoprank", "ml"],
    params={
        "source": Param("tafeng", enum=SOURCES, description="Which source adapter reads the raw data."),
        "source_path": Param("", type="string", description="Raw file/folder (empty: the source's default)."),
        "interval_start": Param("", type="string", description="Override the data interval start (ISO date)."),
        "interval_end": Param("", type="string", description="Override the data interval end (ISO date)."),
        "n_snapshots": Param(6, type="integer", minimum=4),
        "max_users_per_cutoff": Param(2000, type="integer", minimum=10),
        "epochs": Param(6, type="integer", minimum=1),
        "seed": Param(0, type="integer"),
        "search_trials": Param(0, type="integer", minimum=0,
                               description="Random hyperparameter search trials before training (0: off)."),
        "ensemble": Param(3, type="integer", minimum=1,
                          description="Rankers trained from different seeds; the served score is their mean."),
    },
)
def shoprank_nightly():
    @task(retries=0)
    def run_pipeline() -> dict:
        from shoprank.orchestration.runner import run_nightly

        context = get_current_context()
        params = context["params"]
        start = params["interval_start"] or context["data_interval_start"].date().isoformat()
        end = params["interval_end"] or context["data_interval_end"].date().isoformat()
        arguments = {
            "source": params["source"], "source_path": params["source_path"], "interval_start": start,
            "interval_end": end, "n_snapshots": params["n_snapshots"],
            "max_users_per_cutoff": params["max_users_per_cutoff"], "epochs": params["epochs"],
            "seed": params["seed"], "search_trials": params["search_trials"],
            "ensemble": params["ensemble"],
        }
        print(f"running the nightly pipeline with {arguments}")
        outcome = run_nightly(arguments)
        return outcome.__dict__

    run_pipeline()


shoprank_nightly()
