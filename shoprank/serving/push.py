"""Push: publish a blessed SavedModel as a new version under the model base path.

`saved_model.pb` is written last, so TF Serving (which polls for it) never loads a half-copied
version. Lineage (data interval, metrics, code version) travels inside the version directory;
labels (`stable`, `canary`) live in labels.json; old unlabelled versions beyond `keep` go.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from shoprank.serving.repository import LABELS_FILE, model_versions, read_labels
from shoprank.storage import ObjectStore

LINEAGE_FILE = "assets.extra/lineage.json"


def code_version() -> str:
    """The git commit of the code that trained the model, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_labels(store: ObjectStore, name: str, labels: dict[str, int]) -> None:
    store.put_bytes(f"{name}/{LABELS_FILE}", json.dumps(labels, indent=2, sort_keys=True).encode())


def push_model(store: ObjectStore, model_dir: Path, name: str, lineage: dict, label: str = "stable",
               keep: int = 5) -> int:
    """Upload `model_dir` as version max+1 and label it; return the new version number."""
    model_dir = Path(model_dir)
    if not (model_dir / "saved_model.pb").exists():
        raise FileNotFoundError(f"{model_dir} is not a SavedModel (no saved_model.pb)")
    existing = model_versions(store, name)
    version = (existing[-1] + 1) if existing else 1
    prefix = f"{name}/{version}"
    store.delete_prefix(prefix + "/")  # leftovers of an interrupted push of this number
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != "saved_model.pb")
    for path in files:
        store.put_bytes(f"{prefix}/{path.relative_to(model_dir).as_posix()}", path.read_bytes())
    record = {**lineage, "model": name, "version": version, "code_version": code_version()}
    store.put_bytes(f"{prefix}/{LINEAGE_FILE}", json.dumps(record, indent=2, default=str).encode())
    store.put_bytes(f"{prefix}/saved_model.pb", (model_dir / "saved_model.pb").read_bytes())
    labels = read_labels(store, name)
    labels[label] = version
    write_labels(store, name, labels)
    prune(store, name, keep)
    return version


def prune(store: ObjectStore, name: str, keep: int) -> list[int]:
    """Delete the oldest versions beyond `keep`, never one that carries a label."""
    labelled = set(read_labels(store, name).values())
    versions = model_versions(store, name)
    doomed = [v for v in versions[:-keep] if v not in labelled] if keep > 0 else []
    for version in doomed:
        store.delete_prefix(f"{name}/{version}/")
    return doomed


def rollback(store: ObjectStore, name: str, to_version: int | None = None) -> int:
    """Point `stable` at an earlier version (the one before the current stable by default)."""
    versions = model_versions(store, name)
    labels = read_labels(store, name)
    current = labels.get("stable", versions[-1] if versions else None)
    if to_version is None:
        older = [v for v in versions if current is not None and v < current]
        if not older:
            raise ValueError(f"model {name!r} has no version older than stable={current} to roll back to")
        to_version = older[-1]
    if to_version not in versions:
        raise ValueError(f"model {name!r} has no version {to_version}; versions: {versions}")
    labels["stable"] = to_version
    write_labels(store, name, labels)
    return to_version


def read_lineage(store: ObjectStore, name: str, version: int) -> dict:
    return json.loads(store.get_bytes(f"{name}/{version}/{LINEAGE_FILE}"))
