"""Airflow DAG `shoprank_features_refresh` (hourly): the hour's new events through the gate into the
curated store, and a fresh feature snapshot into the online store, between two nightly runs. It
does not retrain. See shoprank.orchestration.refresh.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from shoprank.orchestration.alerts import FailureAlert
from shoprank.orchestration.params import SOURCES

DOC = """
### Hourly feature refresh

1. `roll_events`: the API's closed event-log segments become the `served` source's hourly parquet.
2. `validate_and_publish`: the hour's events from `source` pass the gate (hourly overrides, its own
   drift reference) and are merged into their day in the curated store. A quiet hour is skipped.
3. `materialise`: the user and item features as of the hour's end are added to the offline sources
   and loaded into the online store incrementally (`materialize_incremental`).

While a nightly run holds the `nightly` lock, the hour is skipped (the nightly rewrites every
feature). A gate failure is not retried: the same hour would fail again.
"""


@dag(
    dag_id="shoprank_features_refresh",
    schedule=CronDataIntervalTimetable("@hourly", timezone="UTC"),
    start_date=datetime(2000, 1, 1),  # before any hour a backfill or a test may name (catchup stays off)
    catchup=False,
    max_active_runs=1,
    tags=["shoprank", "features"],
    doc_md=DOC,
    default_args={"on_failure_callback": FailureAlert(), "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "source": Param("served", type="string", enum=SOURCES, title="Source",
                        description="Where the hour's events come from: the events the API took back "
                                    "(served), or a canonical folder."),
        "source_path": Param("", type="string", title="Source path",
                             description="The source's file or folder (empty: the source's default)."),
    },
)
def shoprank_features_refresh():
    @task(retries=1)
    def roll_events() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from shoprank.orchestration.refresh import roll_served

        if get_current_context()["params"]["source"] != "served":
            raise AirflowSkipException("the source is not `served`: no event log to roll")
        return roll_served()

    @task(trigger_rule="none_failed", retries=0)
    def validate_and_publish() -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from shoprank.locks import LockHeld
        from shoprank.orchestration.refresh import validate_and_publish as publish
        from shoprank.validation import GateFailed

        context = get_current_context()
        start, end = context["data_interval_start"], context["data_interval_end"]
        try:
            done = publish(context["params"]["source"], context["params"]["source_path"], start.isoformat(),
                           end.isoformat())
        except GateFailed as err:
            raise AirflowFailException(f"the hour {start}..{end} failed the gate: {err}") from err
        except LockHeld as err:
            raise AirflowSkipException(f"a nightly run is on: {err}") from err
        if not done["events"]:
            raise AirflowSkipException(f"no events in {start}..{end}")
        return done

    @task
    def materialise() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from shoprank.locks import LockHeld
        from shoprank.orchestration.refresh import materialise_snapshot

        try:
            return materialise_snapshot(get_current_context()["data_interval_end"].isoformat())
        except LockHeld as err:
            raise AirflowSkipException(f"a nightly run is on: {err}") from err

    roll_events() >> validate_and_publish() >> materialise()


shoprank_features_refresh()
