"""One notifier for every failure the orchestration raises: a task that failed for good, a DAG run
that failed, a run still not done at its deadline.

Where an alert goes is the settings': locally (no `alert_connection`) it is appended as one JSON
line to `<home>/alerts/alerts.jsonl` and printed to the console (the task log, for a task); in the
cluster profile it is also POSTed as JSON to the webhook URL held by that Airflow Connection (its
host, e.g. `AIRFLOW_CONN_SHOPRANK_ALERTS='{"conn_type": "http", "host": "https://hooks.example/T0"}'`).
A webhook that fails never hides the alert: the local line is written first.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

from shoprank.settings import Settings, load_settings

ALERTS_FILE = "alerts/alerts.jsonl"
WEBHOOK_TIMEOUT_S = 10.0


def alerts_path(settings: Settings) -> Path:
    return settings.home / ALERTS_FILE


def webhook_url(connection_id: str) -> str:
    """The URL an Airflow Connection holds: its host when that is a URL, else built from its parts."""
    from airflow.sdk import Connection

    conn = Connection.get(connection_id)
    host = conn.host or ""
    if "://" in host:
        return host
    port = f":{conn.port}" if conn.port else ""
    return f"{conn.schema or 'https'}://{host}{port}"


def deliver(alert: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Write the alert locally, then to the webhook when the settings name one; return it with
    where it went."""
    settings = settings or load_settings()
    alert = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **alert}
    path = alerts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    sent = {"file": str(path)}
    if settings.alert_connection:
        import requests

        try:
            url = webhook_url(settings.alert_connection)
            response = requests.post(url, json=alert, timeout=WEBHOOK_TIMEOUT_S)
            response.raise_for_status()
            sent["webhook"] = url
        except Exception as err:  # noqa: BLE001 - the alert must still be written and shown
            sent["webhook_error"] = f"{settings.alert_connection}: {err}"
    line = {**alert, "delivered": sent}
    with path.open("a") as out:
        out.write(json.dumps(line, default=str) + "\n")
    print(f"ALERT {alert.get('kind', 'failure')}: {alert.get('summary', '')} ({path})", file=sys.stderr, flush=True)
    return line


def describe_failure(context: dict[str, Any]) -> dict[str, Any]:
    """The facts an on-call engineer needs from a task or DAG failure callback's context."""
    dag = context.get("dag")
    ti = context.get("ti")
    error = context.get("exception") or context.get("reason") or ""
    task_id = getattr(ti, "task_id", None)
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None)
    where = f"{dag_id}.{task_id}" if task_id else str(dag_id)
    return {"kind": "task_failed" if task_id else "dag_failed", "dag_id": dag_id, "run_id": context.get("run_id"),
            "task_id": task_id, "try_number": getattr(ti, "try_number", None), "error": str(error),
            "summary": f"{where} failed in run {context.get('run_id')}: {str(error)[:300]}"}


class FailureAlert(BaseNotifier):
    """`on_failure_callback` of the DAGs and their tasks: one alert per final failure."""

    def notify(self, context: dict[str, Any]) -> None:
        deliver(describe_failure(context))


async def deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """The DeadlineAlert's callback (run by the triggerer, so async and importable by path)."""
    run = (context or {}).get("dag_run", {})
    deadline = (context or {}).get("deadline", {})
    deliver({"kind": "deadline_missed", "dag_id": run.get("dag_id"), "run_id": run.get("dag_run_id"),
             "state": run.get("state"), "deadline": deadline.get("deadline_time"), **kwargs,
             "summary": f"{run.get('dag_id')} run {run.get('dag_run_id')} not done by its deadline "
                        f"{deadline.get('deadline_time')} (state {run.get('state')})"})
