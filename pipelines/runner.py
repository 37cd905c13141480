"""Run the nightly KFP pipeline: through kfp.local on this machine, or on a KFP host.

Which one follows from settings alone (`kfp_host` empty means local): `shoprank run` calls
`run_night` (the private stage in the private zone, then `run_nightly` from its crossing) in both
profiles, the Airflow DAG its private tasks and `run_nightly` in the local one. On a cluster the DAG uses the
deferrable `KfpRunOperator` instead, which frees its worker while KFP runs; the lock cannot span a
deferral, so there the DAG's `max_active_runs=1` and the operator's re-attach keep nights apart.

A run holds the `nightly` lock in the object store for its whole length (renewed while it runs):
a second run started meanwhile, from the CLI, another Airflow worker or a backfill, fails at once
with who holds it, instead of racing the first over the features, the gate state and the models.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from shoprank.orchestration.kfp_run import DETERMINISTIC_TASKS
from shoprank.orchestration.params import CROSSING_KEY, RUN_KEY, pipeline_arguments
from shoprank.orchestration.verdicts import NOT_EVALUATED, read_verdict
from shoprank.orchestration.zone_runner import PrivateTaskFailed, private_night
from shoprank.settings import Settings, load_settings
from shoprank.storage import open_for


class PipelineFailed(RuntimeError):
    """A run ended without success; `retryable` is False when a task that judges the data or the
    model failed (the gate), which the same inputs will fail again."""

    def __init__(self, message: str, failed_tasks: list[str]):
        super().__init__(message)
        self.failed_tasks = failed_tasks
        self.retryable = not set(failed_tasks) & DETERMINISTIC_TASKS


def _local_failed_tasks(message: str) -> list[str]:
    """The failed task kfp.local names in its error ("Inner task failed: 'validate'"), colours removed."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
    found = re.search(r"Inner task failed: '([^']+)'", plain)
    return [found.group(1)] if found else []


@dataclass
class RunOutcome:
    where: str
    run_id: str
    state: str
    pipeline_root: str
    run_key: str = ""
    verdict: str = ""  # the ranker's blessing: blessed / rejected / not evaluated


def run_night(arguments: dict, settings: Settings | None = None, **options) -> RunOutcome:
    """A whole night from the CLI or a bench: the private stage (each task in the private zone),
    then the public pipeline from the crossing it wrote. `options`: those of `run_nightly`."""
    from shoprank.locks import LockHeld, StoreLock

    settings = settings or load_settings()
    interval = f"{arguments['interval_start']}..{arguments['interval_end']}"
    # the whole night, private stage included: two runs never stage, gate or publish over each other
    with StoreLock(open_for(settings), "night-run", f"night {interval}", lease_s=300,
                   wait_s=options.get("wait_for_lock_s", 0.0)):
        try:
            crossing = private_night(arguments, settings)
        except PrivateTaskFailed as err:
            if err.kind == "LockHeld":  # an hour being published: try again later, as for the night's lock
                raise LockHeld(str(err)) from err
            raise PipelineFailed(str(err), [err.task]) from err
        return run_nightly(pipeline_arguments(arguments, crossing["crossing"]), settings, **options)


def run_nightly(arguments: dict, settings: Settings | None = None, timeout_s: int = 6 * 3600,
                wait_for_lock_s: float = 0.0, run_key: str = "") -> RunOutcome:
    """Run the pipeline to completion; raise RuntimeError when any task failed (the gate included),
    LockHeld when another run holds the nightly lock (after `wait_for_lock_s`). `run_key` (the
    Airflow run id; one is made up when empty) keys the blessing verdict the evaluate step records."""
    from shoprank.locks import nightly_lock

    settings = settings or load_settings()
    store = open_for(settings)
    with nightly_lock(store, f"nightly run from {arguments.get(CROSSING_KEY)}", wait_for_lock_s):
        outcome = _run(arguments, settings, timeout_s, run_key or f"cli-{time.strftime('%Y%m%dT%H%M%S')}")
    verdict = read_verdict(store, outcome.run_key)
    outcome.verdict = verdict["verdict"] if verdict else NOT_EVALUATED
    return outcome


def _run(arguments: dict, settings: Settings, timeout_s: int, run_key: str) -> RunOutcome:
    from pipelines.nightly import COMPILED, nightly

    if settings.kfp_host:
        from shoprank.orchestration.kfp_run import run_url, submit_run, wait_for_run_blocking

        run_id = submit_run(settings.kfp_host, COMPILED, {**arguments, RUN_KEY: run_key},
                            run_name=f"nightly-{time.strftime('%Y%m%d-%H%M%S')}")
        status = wait_for_run_blocking(settings.kfp_host, run_id, timeout_s)
        if status.state != "SUCCEEDED":
            raise PipelineFailed(f"KFP run {run_url(settings.kfp_host, run_id)} ended {status.state} "
                                 f"(failed tasks: {status.failed_tasks or 'none'}) {status.error}".strip(),
                                 status.failed_tasks)
        return RunOutcome("kfp", run_id, status.state, settings.kfp_host, run_key=run_key)

    from kfp import local

    root = settings.home / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    try:
        nightly(**arguments, **{RUN_KEY: run_key})
    except Exception as err:
        raise PipelineFailed(f"local pipeline run failed: {err}", _local_failed_tasks(str(err))) from err
    return RunOutcome("kfp.local", f"local-{run_key}", "SUCCEEDED", str(root), run_key=run_key)
