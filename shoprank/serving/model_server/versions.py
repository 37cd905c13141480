"""The model base path as TF Serving lays it out: `<base>/<model>/<version>/saved_model.pb`, the
labels in `<base>/models.config`, and local copies of versions held in S3.

Shared by the model server (what to load), the registry (what to push, label and prune) and the API
(the search index's versions live beside the models).
"""

from __future__ import annotations

import json
from pathlib import Path

from shoprank.serving.model_server import model_config
from shoprank.storage import ObjectStore, replacing_dir

CACHE_MARKER = ".shoprank-complete"


def model_versions(store: ObjectStore, name: str) -> list[int]:
    """Complete versions of a model, oldest first."""
    versions = set()
    for key in store.list(f"{name}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "saved_model.pb" and parts[1].isdigit():
            versions.add(int(parts[1]))
    return sorted(versions)


def read_labels(store: ObjectStore, name: str) -> dict[str, int]:
    """Where each label points, from `models.config`."""
    return model_config.labels(store, name)


def local_copy(store: ObjectStore, prefix: str, cache_dir: Path) -> str:
    """A local directory holding `prefix` (a model or index version). Objects in S3 are copied to a
    cache folder first: into a scratch folder, marked complete, then renamed into place, so a copy
    that dies halfway is never used. A local store's folder is used where it is."""
    if not store.uri(prefix).startswith("s3://"):
        return store.uri(prefix)
    target = Path(cache_dir) / prefix
    if (target / CACHE_MARKER).exists():
        return str(target)
    with replacing_dir(target) as scratch:  # a cache left by an interrupted copy is replaced whole
        keys = store.list(f"{prefix}/")
        for key in keys:
            dest = scratch / key[len(prefix) + 1:]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(store.get_bytes(key))
        (scratch / CACHE_MARKER).write_text(json.dumps({"files": len(keys)}))
    return str(target)
