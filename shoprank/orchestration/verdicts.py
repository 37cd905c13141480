"""The ranker's blessing verdict of one orchestrated run, kept in the object store under the run's key.

KFP's REST API does not carry a component's output parameters (they live in ML Metadata), so the
evaluate step records its verdict here, keyed by the orchestrator's run id, and the Airflow operator
reads it back to push to XCom. A run that stopped before evaluate (the gate said no) has none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shoprank.layout import RUNS_PREFIX
from shoprank.storage import ObjectStore

PREFIX = RUNS_PREFIX
NOT_EVALUATED = "not evaluated"


def verdict_key(run_key: str) -> str:
    """Object key of a run's verdict; an Airflow run id (colons, plus signs) made key-safe."""
    if not run_key.strip():
        raise ValueError("a verdict needs the run's key (the Airflow run id); got an empty one")
    return f"{PREFIX}/{re.sub(r'[^A-Za-z0-9._-]', '_', run_key.strip())}/verdict.json"


def record_verdict(store: ObjectStore, run_key: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write the evaluate step's result (blessed, reasons, candidate metrics) for this run."""
    verdict = {"run_key": run_key, "verdict": "blessed" if result["blessed"] else "rejected",
               "blessed": bool(result["blessed"]), "reasons": list(result.get("reasons", [])),
               "candidate": dict(result.get("candidate", {})),
               "production_version": result.get("production_version")}
    store.put_bytes(verdict_key(run_key), json.dumps(verdict, indent=2, default=str).encode())
    return verdict


def read_verdict(store: ObjectStore, run_key: str) -> dict[str, Any] | None:
    """The run's verdict, or None when its evaluate step never ran."""
    key = verdict_key(run_key)
    if not store.exists(key):
        return None
    return json.loads(store.get_bytes(key))
