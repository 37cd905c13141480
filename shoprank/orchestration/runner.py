"""Run the nightly KFP pipeline: through kfp.local on this machine, or on a KFP host.

Which one follows from settings alone (`kfp_host` empty means local), so the Airflow DAG and the
CLI call `run_nightly` the same way in both profiles.

A run holds the `nightly` lock in the object store for its whole length (renewed while it runs):
a second run started meanwhile, from the CLI, another Airflow worker or a backfill, fails at once
with who holds it, instead of racing the first over the features, the gate state and the models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shoprank.settings import Settings, load_settings


@dataclass
class RunOutcome:
    where: str
    run_id: str
    state: str
    pipeline_root: str


def run_nightly(arguments: dict, settings: Settings | None = None, timeout_s: int = 6 * 3600,
                wait_for_lock_s: float = 0.0) -> RunOutcome:
    """Run the pipeline to completion; raise RuntimeError when any task failed (the gate included),
    LockHeld when another run holds the nightly lock (after `wait_for_lock_s`)."""
    from shoprank.locks import StoreLock
    from shoprank.storage import open_store

    settings = settings or load_settings()
    store = open_store(settings.store, settings.s3_endpoint_url or None)
    interval = f"{arguments.get('interval_start', '')}..{arguments.get('interval_end', '')}"
    with StoreLock(store, "nightly", f"nightly run {interval}", lease_s=300, wait_s=wait_for_lock_s):
        return _run(arguments, settings, timeout_s)


def _run(arguments: dict, settings: Settings, timeout_s: int) -> RunOutcome:
    from pipelines.nightly import COMPILED, nightly

    if settings.kfp_host:
        import kfp

        client = kfp.Client(host=settings.kfp_host)
        run = client.create_run_from_pipeline_package(str(COMPILED), arguments=arguments,
                                                      run_name=f"nightly-{time.strftime('%Y%m%d-%H%M%S')}",
                                                      experiment_name="shoprank-nightly")
        detail = client.wait_for_run_completion(run.run_id, timeout=timeout_s)
        state = str(detail.state)
        if state.upper() not in ("SUCCEEDED", "RUNTIMESTATE.SUCCEEDED"):
            raise RuntimeError(f"KFP run {run.run_id} on {settings.kfp_host} ended {state}")
        return RunOutcome("kfp", run.run_id, state, settings.kfp_host)

    from kfp import local

    root = settings.home / "kfp"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.strftime("%Y%m%d-%H%M%S")
    try:
        nightly(**arguments)
    except Exception as err:
        raise RuntimeError(f"local pipeline run failed: {err}") from err
    return RunOutcome("kfp.local", f"local-{started}", "SUCCEEDED", str(root))
