"""Airflow DAG `shoprank_promote` (manual): moves what `stable` serves, on purpose.

`to_version` moves `stable` to a given version, `to_canary` to where `canary` points, `rollback` to
the version before the current one. Unconfirmed, the run only shows the plan (the task is skipped);
confirmed, it moves the label once the model server has the version loaded and logs the move, with
who triggered it and the lineage of the version now served, to `<model>/promotions.jsonl`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from shoprank.orchestration.alerts import FailureAlert
from shoprank.serving.registry.promotions import ACTIONS
from shoprank.storage import open_for

DOC = """
### Promote or roll back a model

1. Trigger with `confirm` unticked: the `plan` task logs what would change (`stable v3 -> v5`).
2. Trigger again with `confirm` ticked and a `reason`: `apply` moves `stable` once the version is
   loaded, and appends the move to `<model>/promotions.jsonl` in the model store (lineage).
"""


@dag(
    dag_id="shoprank_promote",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["shoprank", "serving"],
    doc_md=DOC,
    default_args={"on_failure_callback": FailureAlert(), "retries": 0},
    params={
        "model": Param("ranker", type="string", enum=["ranker", "search_ranker"], title="Model",
                       description="Which served model's `stable` label moves."),
        "action": Param("rollback", type="string", enum=list(ACTIONS), title="Action",
                        description="to_version: stable to `version`; to_canary: stable to the canary's "
                                    "version; rollback: stable to the version before it."),
        "version": Param(0, type="integer", minimum=0, title="Version",
                         description="The version for to_version (ignored by the other actions)."),
        "reason": Param("", type="string", title="Reason", description="Why; kept in the promotion log."),
        "confirm": Param(False, type="boolean", title="Confirm",
                         description="Unticked: show the plan only. Ticked: move the label."),
    },
)
def shoprank_promote():
    @task
    def plan() -> dict:
        from shoprank.serving.registry import promotions
        from shoprank.settings import load_settings

        params = get_current_context()["params"]
        settings = load_settings()
        store = open_for(settings, "models")
        chosen = promotions.plan(store, params["model"], params["action"], params["version"] or None)
        print(f"plan: {chosen.describe()}")
        return chosen.__dict__

    @task
    def apply(planned: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from shoprank.serving.registry import promotions
        from shoprank.serving.registry.push import server_waiter
        from shoprank.settings import load_settings

        context = get_current_context()
        chosen = promotions.Plan(**planned)
        if not context["params"]["confirm"]:
            raise AirflowSkipException(f"not confirmed: would do {chosen.describe()}; trigger again with confirm")
        settings = load_settings()
        store = open_for(settings, "models")
        actor = f"airflow:{context['dag_run'].triggering_user_name or 'unknown'}:{context['run_id']}"
        record = promotions.apply(store, chosen, actor=actor, reason=context["params"]["reason"],
                                  wait_loaded=server_waiter(settings.model_server_url, chosen.model))
        print(f"done: {chosen.describe()}; logged to {chosen.model}/{promotions.LOG_FILE}")
        return record

    apply(plan())


shoprank_promote()
