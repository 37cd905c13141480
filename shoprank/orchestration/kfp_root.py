"""Purging what the KFP pipeline root kept from before the zone split.

Why: until the private stage ran before the pipeline, the pipeline's own `ingest`, `validate` and
`features` tasks wrote raw user ids, session ids and query text as artifacts under the pipeline
root (public, kept 180 days). The bucket's lifecycle rule now expires the root sooner; this removes
those tasks' artifacts at once. KFP v2 lays artifacts out as
`<root>/<pipeline>/<run>/<task>/...` (kfp.local the same under its local root), so a key is one of
theirs when a path segment is one of the retired tasks' names.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoprank.storage import ObjectStore

#: The pipeline tasks that handled raw data before the private stage took them over.
RETIRED_RAW_TASKS = frozenset({"ingest", "validate", "features"})


@dataclass
class Purge:
    matched: list[str]
    deleted: int

    def as_dict(self) -> dict:
        return {"matched": len(self.matched), "deleted": self.deleted, "examples": self.matched[:5]}


def raw_artifact_keys(store: ObjectStore, prefix: str = "") -> list[str]:
    """Every key under the pipeline root that a retired raw-data task wrote."""
    return [key for key in store.list(prefix) if RETIRED_RAW_TASKS & set(key.split("/")[:-1])]


def purge_raw_artifacts(store: ObjectStore, prefix: str = "", dry_run: bool = True) -> Purge:
    """Delete (or with `dry_run`, only list) the retired raw-data tasks' artifacts."""
    keys = raw_artifact_keys(store, prefix)
    deleted = 0
    if not dry_run:
        for task_dir in sorted({key.rsplit("/", 1)[0] + "/" for key in keys}):
            deleted += store.delete_prefix(task_dir)
    return Purge(keys, deleted)
