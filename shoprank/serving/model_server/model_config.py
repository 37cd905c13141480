"""TF Serving's model config (`<model base path>/models.config`): which versions to serve and where
each label points. TF Serving polls it (`--model_config_file=<base>/models.config`,
`--model_config_file_poll_wait_seconds`); shoprank's model server reads the same file; push and
rollback write it. It is the one record of labels.

The file is TF Serving's own text format (`tensorflow_serving.config.ModelServerConfig`), written
with protobuf's text format and replaced by a conditional write, so a reader never sees half a file
and two writers never lose each other's change.
"""

from __future__ import annotations

import json

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from shoprank.storage import ObjectStore

CONFIG_FILE = "models.config"
LEGACY_LABELS_FILE = "labels.json"  # labels before models.config (read once, never written)


def read_config(store: ObjectStore) -> tuple[model_server_config_pb2.ModelServerConfig, str | None]:
    """The config and its version token (None: no file yet, an empty config)."""
    config = model_server_config_pb2.ModelServerConfig()
    found = store.read_versioned(CONFIG_FILE)
    if found is None:
        return config, None
    try:
        text_format.Parse(found[0].decode(), config)
    except text_format.ParseError as err:
        raise ValueError(f"{store.uri(CONFIG_FILE)} is not a TF Serving model config: {err}") from err
    return config, found[1]


def _entry(config: model_server_config_pb2.ModelServerConfig, name: str):
    for model in config.model_config_list.config:
        if model.name == name:
            return model
    return None


def labels(store: ObjectStore, name: str) -> dict[str, int]:
    entry = _entry(read_config(store)[0], name)
    if entry is not None:
        return dict(entry.version_labels)
    legacy = f"{name}/{LEGACY_LABELS_FILE}"
    return {k: int(v) for k, v in json.loads(store.get_bytes(legacy)).items()} if store.exists(legacy) else {}


def served_versions(store: ObjectStore, name: str) -> list[int] | None:
    """The versions the config tells servers to load, or None when it has no entry for the model."""
    entry = _entry(read_config(store)[0], name)
    return None if entry is None else sorted(entry.model_version_policy.specific.versions)


def render(config: model_server_config_pb2.ModelServerConfig) -> bytes:
    return ("# Written by shoprank push/rollback (shoprank/serving/model_server/model_config.py); "
            "TF Serving polls it.\n"
            + text_format.MessageToString(config)).encode()


def update(store: ObjectStore, name: str, versions: list[int], version_labels: dict[str, int],
           attempts: int = 20) -> None:
    """Set one model's served versions and labels, leaving other models' entries as they are.

    Every labelled version must be served (TF Serving refuses a label on a version it does not load).
    """
    unserved = {label: v for label, v in version_labels.items() if v not in versions}
    if unserved:
        raise ValueError(f"labels {unserved} point at versions not in the served list {sorted(versions)}")
    for _ in range(attempts):
        config, token = read_config(store)
        entry = _entry(config, name)
        if entry is None:
            entry = config.model_config_list.config.add(name=name, model_platform="tensorflow")
        entry.base_path = store.uri(name)
        entry.model_version_policy.specific.ClearField("versions")
        entry.model_version_policy.specific.versions.extend(sorted(set(versions)))
        entry.version_labels.clear()
        for label, version in sorted(version_labels.items()):
            entry.version_labels[label] = version
        if store.put_if(CONFIG_FILE, render(config), token) is not None:
            return
    raise RuntimeError(f"{store.uri(CONFIG_FILE)} kept changing under {attempts} attempts to update {name!r}")
