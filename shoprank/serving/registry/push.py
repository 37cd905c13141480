"""Push, promote and roll back model versions under the model base path, the way TF Serving needs it.

- A new version is uploaded with `saved_model.pb` last, so no server loads a half-copied version.
  Lineage (data interval, metrics, code version, feature view versions) travels inside it.
- Labels move in two steps (TF Serving refuses a label on a version it has not loaded): first the
  version is added to the served list of `models.config`, then, once the model server reports it
  AVAILABLE, the label is moved. A version that fails to load never gets the label.
- The served list is the labelled versions plus the newest two, so a rollback to the version
  before is instant (it is still loaded). Pruning removes the oldest versions beyond `keep`, never
  a served or labelled one.
- Every change holds the model's lock (`shoprank.locks`): two pushes at once get different version
  numbers, and neither loses the other's label.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from shoprank.locks import StoreLock
from shoprank.serving import SERVED_LABEL
from shoprank.serving.model_server import model_config
from shoprank.serving.model_server.versions import model_versions, read_labels
from shoprank.storage import ObjectStore

LINEAGE_FILE = "assets.extra/lineage.json"
KEEP_RECENT_SERVED = 2
WaitLoaded = Callable[[int], None]


def code_version() -> str:
    """The git commit of the code that trained the model, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def model_lock(store: ObjectStore, name: str, purpose: str) -> StoreLock:
    return StoreLock(store, f"model-{name}", purpose, lease_s=300, wait_s=600)


def _served(store: ObjectStore, name: str, labels: dict[str, int], extra: int | None = None) -> list[int]:
    versions = model_versions(store, name)
    served = set(labels.values()) | set(versions[-KEEP_RECENT_SERVED:])
    if extra is not None:
        served.add(extra)
    return sorted(served)


def write_labels(store: ObjectStore, name: str, labels: dict[str, int]) -> None:
    """Set the labels at once (tests, repairs); the served list follows. Pushes move labels with
    `move_label`, which waits for the version to load first."""
    with model_lock(store, name, "write labels"):
        model_config.update(store, name, _served(store, name, labels), labels)


def push_model(store: ObjectStore, model_dir: Path, name: str, lineage: dict, label: str = SERVED_LABEL,
               keep: int = 5, wait_loaded: WaitLoaded | None = None) -> int:
    """Upload `model_dir` as version max+1, have servers load it, then label it; return the version."""
    model_dir = Path(model_dir)
    if not (model_dir / "saved_model.pb").exists():
        raise FileNotFoundError(f"{model_dir} is not a SavedModel (no saved_model.pb)")
    with model_lock(store, name, f"push {name}"):
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
        model_config.update(store, name, _served(store, name, labels, version), labels)  # step 1: load it
    move_label(store, name, label, version, keep=keep, wait_loaded=wait_loaded)  # step 2: once loaded
    return version


def move_label(store: ObjectStore, name: str, label: str, version: int, keep: int = 5,
               wait_loaded: WaitLoaded | None = None) -> None:
    """Point `label` at `version` once it is loaded (`wait_loaded` raises if it never loads)."""
    if wait_loaded is not None:
        wait_loaded(version)
    with model_lock(store, name, f"label {label} -> {version}"):
        if version not in model_versions(store, name):
            raise ValueError(f"model {name!r} has no version {version}; versions: {model_versions(store, name)}")
        labels = read_labels(store, name)
        labels[label] = version
        model_config.update(store, name, _served(store, name, labels), labels)
        prune(store, name, keep)


def prune(store: ObjectStore, name: str, keep: int) -> list[int]:
    """Delete the oldest versions beyond `keep`, never one that is served or labelled."""
    protected = set(read_labels(store, name).values()) | set(model_config.served_versions(store, name) or [])
    versions = model_versions(store, name)
    doomed = [v for v in versions[:-keep] if v not in protected] if keep > 0 else []
    for version in doomed:
        store.delete_prefix(f"{name}/{version}/")
    return doomed


def rollback(store: ObjectStore, name: str, to_version: int | None = None,
             wait_loaded: WaitLoaded | None = None) -> int:
    """Point `stable` at an earlier version (the one before the current stable by default)."""
    with model_lock(store, name, "rollback"):
        versions = model_versions(store, name)
        labels = read_labels(store, name)
        current = labels.get(SERVED_LABEL, versions[-1] if versions else None)
        if to_version is None:
            older = [v for v in versions if current is not None and v < current]
            if not older:
                raise ValueError(f"model {name!r} has no version older than stable={current} to roll back to")
            to_version = older[-1]
        if to_version not in versions:
            raise ValueError(f"model {name!r} has no version {to_version}; versions: {versions}")
        model_config.update(store, name, _served(store, name, labels, to_version), labels)  # step 1
    move_label(store, name, SERVED_LABEL, to_version, keep=0, wait_loaded=wait_loaded)  # step 2
    return to_version


class VersionNotLoaded(RuntimeError):
    """The model server failed to load the version, or did not within the time allowed."""


def wait_until_available(status: Callable[[str, int], dict], name: str, timeout_s: float = 600.0,
                         poll_s: float = 0.5) -> WaitLoaded:
    """A `wait_loaded` over TF Serving's model status (`RestClient.status`): returns once the version is
    AVAILABLE, raises VersionNotLoaded if the server reports it failed or does not load it in time."""
    def wait(version: int) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no status yet"
        while time.monotonic() < deadline:
            try:
                entries = status(name, version)["model_version_status"]
            except Exception as err:  # noqa: BLE001 - not there yet (404), or the server is restarting
                last = str(err)
                entries = []
            for entry in entries:
                if int(entry["version"]) != version:
                    continue
                if entry["state"] == "AVAILABLE":
                    return
                message = entry.get("status", {}).get("error_message", "")
                if entry["state"] == "END" and message:
                    raise VersionNotLoaded(f"{name} v{version} failed to load; the label stays: {message}")
                last = entry["state"]
            time.sleep(poll_s)
        raise VersionNotLoaded(f"{name} v{version} not AVAILABLE after {timeout_s:.0f}s ({last}); the label stays")

    return wait


def server_waiter(model_server_url: str, name: str, timeout_s: float = 600.0,
                  log: Callable[[str], None] = print) -> WaitLoaded | None:
    """A `wait_loaded` against the model server at this URL, or None when none answers there (the
    local profile between demo runs: a server that starts later loads the version before it serves
    the label, as shoprank's model server only moves labels to loaded versions)."""
    from shoprank.serving.model_server.client import ModelServerError, RestClient  # TF Serving protos load TF

    client = RestClient(model_server_url, timeout=5)
    try:
        client.status(name)
    except ModelServerError as err:
        log(f"{err.reason} model server at {model_server_url} ({err}); labels move without waiting for a load")
        return None
    return wait_until_available(client.status, name, timeout_s=timeout_s)


def read_lineage(store: ObjectStore, name: str, version: int) -> dict:
    return json.loads(store.get_bytes(f"{name}/{version}/{LINEAGE_FILE}"))
