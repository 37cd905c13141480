"""Submit the compiled nightly pipeline to a KFP host and read a run's state, over the KFP v2beta1
REST API (kfp SDK 2.17.3 for the submission, plain HTTP for the polls).

The polls are async (httpx) so the Airflow trigger can wait on many runs in one event loop, and
they treat the states the API can answer the way the server does: SUCCEEDED, SKIPPED, FAILED and
CANCELED are final (the SDK's own `wait_for_run_completion` misses CANCELED and would poll to its
timeout); PENDING, RUNNING, CANCELING and PAUSED are not.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TERMINAL = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
SUCCESS = frozenset({"SUCCEEDED"})
EXPERIMENT = "shoprank-nightly"
# Tasks of a night whose failure means the data is wrong, not the cluster (the private stage's
# staging and gate): running the same inputs again cannot help, so an orchestrator should not retry
# them. Not `receive`: a crossing still replicating is worth another try.
DETERMINISTIC_TASKS = frozenset({"stage", "validate"})


def run_url(ui_host: str, run_id: str) -> str:
    """The run's page in the KFP UI (hash routing, as the SDK prints it)."""
    return f"{ui_host.rstrip('/')}/#/runs/details/{run_id}"


def submit_run(host: str, package: Path, arguments: dict[str, Any], run_name: str,
               experiment: str = EXPERIMENT) -> str:
    """Create a run of the compiled pipeline package with these parameters; return its run id."""
    import kfp

    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(str(package), arguments=arguments, run_name=run_name,
                                                     experiment_name=experiment)
    if not result.run_id:
        raise RuntimeError(f"KFP host {host} accepted the run but returned no run id")
    return str(result.run_id)


def find_active_run(host: str, run_name: str, timeout_s: float = 30.0) -> str | None:
    """The id of a run with this display name that is not final yet, if there is one: a retried
    Airflow task re-attaches to the run its earlier try submitted instead of starting a second one
    that would write the same features and models beside it."""
    query = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": run_name}]})
    response = httpx.get(f"{host.rstrip('/')}/apis/v2beta1/runs", params={"filter": query, "page_size": 20},
                         headers={"Accept": "application/json"}, timeout=timeout_s)
    response.raise_for_status()
    for body in response.json().get("runs", []):
        status = parse_run(body)
        if not status.done and status.state != "ERROR":
            return status.run_id
    return None


@dataclass
class RunStatus:
    """One answer of GET /apis/v2beta1/runs/{id}, reduced to what the orchestrator acts on."""

    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)  # display name -> state
    finished_at: str = ""
    error: str = ""

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def failed_tasks(self) -> list[str]:
        return sorted(name for name, state in self.tasks.items() if state == "FAILED")

    @property
    def retryable(self) -> bool:
        """A failure the same inputs may get past on a second try (not the gate, not a rejection)."""
        return self.state not in SUCCESS and not set(self.failed_tasks) & DETERMINISTIC_TASKS

    def as_event(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "state": self.state, "tasks": self.tasks, "finished_at": self.finished_at,
                "error": self.error}


class KfpApiError(RuntimeError):
    """The KFP API answered with an error that waiting will not fix (the run is gone, no access)."""


def parse_run(body: dict[str, Any]) -> RunStatus:
    tasks = {t.get("display_name", t.get("task_id", "?")): t.get("state", "RUNTIME_STATE_UNSPECIFIED")
             for t in (body.get("run_details") or {}).get("task_details", [])}
    finished = body.get("finished_at", "")
    return RunStatus(run_id=str(body.get("run_id", "")), state=str(body.get("state", "RUNTIME_STATE_UNSPECIFIED")),
                     tasks=tasks, finished_at="" if finished.startswith("1970-01-01") else finished,
                     error=str((body.get("error") or {}).get("message", "")))


async def fetch_run(client: httpx.AsyncClient, run_id: str) -> RunStatus:
    """One poll. Raises KfpApiError on a 4xx (not 429); transport errors and 5xx propagate as httpx
    errors, which the caller may retry."""
    response = await client.get(f"/apis/v2beta1/runs/{run_id}")
    if 400 <= response.status_code < 500 and response.status_code != 429:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise KfpApiError(f"GET run {run_id}: HTTP {response.status_code}: {message}")
    response.raise_for_status()
    return parse_run(response.json())


async def wait_for_run(host: str, run_id: str, poll_s: float = 30.0, max_errors: int = 10,
                       request_timeout_s: float = 30.0) -> RunStatus:
    """Poll until the run is final. Up to `max_errors` failed polls in a row (the API restarting)
    are waited out; more, or an error answer, end the wait with state ERROR and the reason."""
    errors = 0
    async with httpx.AsyncClient(base_url=host.rstrip("/"), timeout=request_timeout_s,
                                 headers={"Accept": "application/json"}) as client:
        while True:
            try:
                status = await fetch_run(client, run_id)
            except KfpApiError as err:
                return RunStatus(run_id, "ERROR", error=str(err))
            except httpx.HTTPError as err:
                errors += 1
                if errors >= max_errors:
                    return RunStatus(run_id, "ERROR",
                                     error=f"KFP API at {host} failed {errors} polls in a row: {err!r}")
            else:
                errors = 0
                if status.done:
                    return status
            await asyncio.sleep(poll_s)


def wait_for_run_blocking(host: str, run_id: str, timeout_s: float, poll_s: float = 30.0) -> RunStatus:
    """The same wait for a caller without an event loop (`shoprank run` in the cluster profile)."""
    started = time.monotonic()
    try:
        return asyncio.run(asyncio.wait_for(wait_for_run(host, run_id, poll_s), timeout=timeout_s))
    except TimeoutError:
        return RunStatus(run_id, "TIMEOUT", error=f"not final after {time.monotonic() - started:.0f}s")
