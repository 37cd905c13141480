"""Airflow DAG `shoprank_features_refresh` (hourly): the hour's new events through the gate into the
curated store, and a fresh feature snapshot into the online store, between two nightly runs. It
does not retrain. See shoprank.orchestration.private and shoprank.orchestration.refresh.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

from shoprank.orchestration.alerts import FailureAlert
from shoprank.orchestration.params import SOURCES
from shoprank.orchestration.zone_runner import PRIVATE_QUEUE

DOC = """
### Hourly feature refresh

Public zone:
1. `roll_events`: the API's closed event-log segments become the `served` source's hourly parquet
   (the API rolls its own log every 10 s; this is the backstop and the roll's health alert).

Private zone (queue `private-data`, each task in the private zone's own process):
2. `validate_and_publish`: the hour's events from `source` pass the gate (hourly overrides, its own
   drift reference) and are merged into their day in the curated store. A quiet hour is skipped.
3. `pseudonymise`: the events of the features' look-back to the hour's end become the hourly
   crossing (`features/crossing/hourly/`), as a night's do.

Public zone:
4. `materialise`: the user and item features as of the hour's end, from the crossing, are added to
   the offline sources and loaded into the online store incrementally (`materialize_incremental`).

After the roll, in the public zone:
5. `experiments`: one look at every running online experiment (its served lists and the events
   that came back, joined on `request_id`): promote the canary through the promotion path, roll it
   back on a guardrail breach or a losing KPI, stop it at its maximum duration, with an alert either
   way ([docs/experiments.md](docs/experiments.md)).

Beside them, the erasures ([docs/privacy.md](docs/privacy.md)):
6. `erasure_requests` (private): the erasures admins queued through the API, resolved to the
   shopper and erased from the private stores.
7. `erasures` (public): every erasure's public half not done yet, by pseudonym.

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

        from shoprank.orchestration.refresh import roll_events as roll

        if get_current_context()["params"]["source"] != "served":
            raise AirflowSkipException("the source is not `served`: no event log to roll")
        return roll()

    @task(queue=PRIVATE_QUEUE, trigger_rule="none_failed", retries=0)
    def validate_and_publish() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        context = get_current_context()
        start, end = context["data_interval_start"], context["data_interval_end"]
        done = _private("validate_and_publish_hour", source=context["params"]["source"],
                        source_path=context["params"]["source_path"], start=start.isoformat(), end=end.isoformat())
        if not done["events"]:
            raise AirflowSkipException(f"no events in {start}..{end}")
        return done

    @task(queue=PRIVATE_QUEUE)
    def pseudonymise() -> dict:
        context = get_current_context()
        return _private("pseudonymise_hour", start=context["data_interval_start"].isoformat(),
                        end=context["data_interval_end"].isoformat(), source=context["params"]["source"])

    @task
    def materialise(crossing: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from shoprank.locks import LockHeld
        from shoprank.orchestration.refresh import materialise_hour

        try:
            return materialise_hour(crossing["crossing"])
        except LockHeld as err:
            raise AirflowSkipException(f"a nightly run is on: {err}") from err

    @task(trigger_rule="none_failed", retries=1)
    def experiments() -> list:
        """Runs after the roll, or without it (the API rolls its own log every 10 s)."""
        from shoprank.orchestration.experiments import evaluate_experiments

        return evaluate_experiments()

    @task(queue=PRIVATE_QUEUE)
    def erasure_requests() -> dict:
        return _private("apply_erasure_requests")

    @task
    def erasures() -> dict:
        from shoprank.orchestration.erasure import apply_public

        return apply_public()

    rolled, published, crossing = roll_events(), validate_and_publish(), pseudonymise()
    rolled >> published >> crossing  # the crossing holds the hour only once it is published
    rolled >> experiments()
    materialise(crossing)
    erasure_requests() >> erasures()  # the private half first: it publishes the pseudonyms to erase


def _private(task_name: str, **kwargs) -> dict:
    """Run one private task in the private zone; a gate failure fails the task without a retry, a
    nightly in progress (its lock held) skips the hour."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from shoprank.orchestration.zone_runner import PrivateTaskFailed, run_private

    try:
        return run_private(task_name, **kwargs)
    except PrivateTaskFailed as err:
        if err.kind == "LockHeld":
            raise AirflowSkipException(f"a nightly run is on: {err.message}") from err
        if err.kind == "GateFailed":
            raise AirflowFailException(f"the hour failed the gate: {err.message}") from err
        raise


shoprank_features_refresh()
