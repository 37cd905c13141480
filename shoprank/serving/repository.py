"""The model base path in TF Serving's layout: `<base>/<model>/<version>/saved_model.pb`.

A version counts only once its `saved_model.pb` exists; push writes that file last, so a
half-copied version is invisible to every server. `labels.json` beside the versions maps labels
(`stable`, `canary`) to versions, which TF Serving gets from its model config file instead.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from shoprank.storage import ObjectStore, open_store

LABELS_FILE = "labels.json"


def model_versions(store: ObjectStore, name: str) -> list[int]:
    """Complete versions of a model, oldest first."""
    versions = set()
    for key in store.list(f"{name}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == "saved_model.pb" and parts[1].isdigit():
            versions.add(int(parts[1]))
    return sorted(versions)


def read_labels(store: ObjectStore, name: str) -> dict[str, int]:
    key = f"{name}/{LABELS_FILE}"
    return {k: int(v) for k, v in json.loads(store.get_bytes(key)).items()} if store.exists(key) else {}


@dataclass
class LoadedModel:
    name: str
    version: int
    path: str
    signatures: dict[str, Any]

    def signature(self, name: str | None) -> Any:
        key = name or "serving_default"
        if key not in self.signatures:
            raise KeyError(f"model {self.name} version {self.version} has no signature {key!r}; "
                           f"available: {sorted(self.signatures)}")
        return self.signatures[key]

    def predict(self, inputs: dict[str, np.ndarray], signature_name: str | None = None) -> dict[str, np.ndarray]:
        fn = self.signature(signature_name)
        _, specs = fn.structured_input_signature
        missing = sorted(set(specs) - set(inputs))
        unknown = sorted(set(inputs) - set(specs))
        if missing or unknown:
            raise ValueError(f"inputs do not match signature: missing {missing}, unexpected {unknown}")
        tensors = {k: tf.constant(np.asarray(v), dtype=specs[k].dtype) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in fn(**tensors).items()}


class ModelRepository:
    """Loads the newest version of every model under a base path and reloads when new ones land."""

    def __init__(self, base_path: str, endpoint_url: str | None = None) -> None:
        self.base_path = base_path
        self.store = open_store(base_path, endpoint_url)
        self._loaded: dict[str, dict[int, LoadedModel]] = {}
        self._lock = threading.Lock()

    def model_names(self) -> list[str]:
        names = {key.split("/")[0] for key in self.store.list("") if "/" in key}
        return sorted(n for n in names if model_versions(self.store, n))

    def _local_dir(self, name: str, version: int) -> str:
        """A local directory TF can load; S3 versions are copied to a cache folder first."""
        if not self.base_path.startswith("s3://"):
            return self.store.uri(f"{name}/{version}")
        import tempfile

        target = Path(tempfile.gettempdir()) / "shoprank-models" / name / str(version)
        if not (target / "saved_model.pb").exists():
            for key in self.store.list(f"{name}/{version}/"):
                dest = target / key.split("/", 2)[2]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(self.store.get_bytes(key))
        return str(target)

    def refresh(self) -> None:
        """Load new versions (keeping the newest two per model in memory), drop deleted ones."""
        with self._lock:
            for name in self.model_names():
                versions = model_versions(self.store, name)
                wanted = set(versions[-2:]) | set(read_labels(self.store, name).values())
                have = self._loaded.setdefault(name, {})
                for version in sorted(wanted - set(have)):
                    if version not in versions:
                        continue
                    path = self._local_dir(name, version)
                    loaded = tf.saved_model.load(path)
                    have[version] = LoadedModel(name, version, path, dict(loaded.signatures))
                for version in set(have) - wanted:
                    del have[version]

    def status(self, name: str) -> dict[int, str]:
        if name not in self._loaded or not self._loaded[name]:
            raise KeyError(f"no model named {name!r} is loaded from {self.base_path}")
        return {v: "AVAILABLE" for v in sorted(self._loaded[name])}

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedModel:
        if name not in self._loaded or not self._loaded[name]:
            raise KeyError(f"no model named {name!r} is loaded from {self.base_path}")
        if label is not None:
            labels = read_labels(self.store, name)
            if label not in labels:
                raise KeyError(f"model {name!r} has no version labelled {label!r}; labels: {labels}")
            version = labels[label]
        if version is None:  # like a TF Serving config that pins `stable`; newest when unlabelled
            version = read_labels(self.store, name).get("stable", max(self._loaded[name]))
        if version not in self._loaded[name]:
            raise KeyError(f"model {name!r} has no loaded version {version}; loaded: {sorted(self._loaded[name])}")
        return self._loaded[name][version]
