"""Promotions: what `stable` serves, moved on purpose by a person, with a record of every move.

Three actions, each planned first (so a caller can show what would change before it does):
- `to_version`: `stable` to a given version;
- `to_canary`: `stable` to where `canary` points (the canary passed its look);
- `rollback`: `stable` to the version before it.
(The serving modules are imported inside the functions: the promote DAG imports this module to
list the actions, and the DAG processor should not load TensorFlow to parse it.)
Applying one moves the label the way a push does (the version must load first, see `push`), then
appends a record to `<model>/promotions.jsonl` in the model store: who, when, why, from which version
to which, and the lineage of the version now served. The record is written under the model's lock
after the move, so the log never claims a move that did not happen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shoprank.serving import SERVED_LABEL
from shoprank.serving.model_server.versions import model_versions, read_labels
from shoprank.serving.registry.push import code_version, model_lock, move_label, read_lineage, rollback
from shoprank.storage import ObjectStore

ACTIONS = ("to_version", "to_canary", "rollback")
LOG_FILE = "promotions.jsonl"


@dataclass(frozen=True)
class Plan:
    model: str
    action: str
    from_version: int | None
    to_version: int

    def describe(self) -> str:
        return f"{self.model}: stable v{self.from_version} -> v{self.to_version} ({self.action})"


def plan(store: ObjectStore, model: str, action: str, version: int | None = None) -> Plan:
    """What `action` would do now; ValueError, naming what is missing, when it cannot be done."""

    if action not in ACTIONS:
        raise ValueError(f"unknown promotion action {action!r}: expected one of {list(ACTIONS)}")
    versions = model_versions(store, model)
    if not versions:
        raise ValueError(f"model {model!r} has no versions in the model store")
    labels = read_labels(store, model)
    current = labels.get(SERVED_LABEL)
    if action == "to_version":
        if version is None or version not in versions:
            raise ValueError(f"model {model!r} has no version {version}; versions: {versions}")
        target = version
    elif action == "to_canary":
        if "canary" not in labels:
            raise ValueError(f"model {model!r} has no canary label; labels: {labels}")
        target = labels["canary"]
    else:
        older = [v for v in versions if current is not None and v < current]
        if not older:
            raise ValueError(f"model {model!r} has no version older than stable={current} to roll back to")
        target = older[-1]
    if target == current:
        raise ValueError(f"model {model!r}: stable already serves v{current}; nothing to {action}")
    return Plan(model, action, current, target)


def apply(store: ObjectStore, chosen: Plan, actor: str, reason: str = "",
          wait_loaded: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Move `stable` as planned, then log it; return the log record. Refuses a stale plan (stable
    moved since it was made), so two people promoting at once cannot undo each other unseen."""

    now = read_labels(store, chosen.model).get(SERVED_LABEL)
    if now != chosen.from_version:
        raise ValueError(f"{chosen.describe()} is stale: stable now serves v{now}; plan again")
    if chosen.action == "rollback":
        rollback(store, chosen.model, chosen.to_version, wait_loaded=wait_loaded)
    else:
        move_label(store, chosen.model, SERVED_LABEL, chosen.to_version, wait_loaded=wait_loaded)
    try:
        lineage = read_lineage(store, chosen.model, chosen.to_version)
    except (FileNotFoundError, KeyError, ValueError):  # a version pushed by hand, without lineage
        lineage = {}
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), **asdict(chosen), "label": SERVED_LABEL,
              "actor": actor, "reason": reason, "code_version": code_version(),
              "served_lineage": {k: lineage.get(k) for k in ("data_interval", "source", "metrics", "code_version")}}
    key = f"{chosen.model}/{LOG_FILE}"
    with model_lock(store, chosen.model, "promotion log"):
        before = store.get_bytes(key) if store.exists(key) else b""
        store.put_bytes(key, before + (json.dumps(record, default=str) + "\n").encode())
    return record


def history(store: ObjectStore, model: str) -> list[dict[str, Any]]:
    """Every logged promotion of `model`, oldest first."""
    key = f"{model}/{LOG_FILE}"
    if not store.exists(key):
        return []
    return [json.loads(line) for line in store.get_bytes(key).decode().splitlines() if line.strip()]
