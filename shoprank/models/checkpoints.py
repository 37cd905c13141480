"""Training that survives preemption: Keras' `BackupAndRestore`, its folder mirrored to the object store.

Why the store: the public zone's GPUs are cheapest as spot capacity, and a spot node can vanish in
the middle of an epoch, taking its local disk with it. The backup is uploaded after each save
(weights first, then the metadata naming the epoch, so a reader never sees an epoch without its
weights) and fetched before training starts; a train step killed halfway and run again picks up at
the last backup instead of the first epoch. A finished run deletes its backup, local and stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from shoprank.storage import ObjectStore

WEIGHTS_FILE = "latest.weights.h5"  # the names Keras' BackupAndRestore writes
METADATA_FILE = "training_metadata.json"


class StoreBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose backup also lives under `prefix` of `store` (None: local folder only)."""

    def __init__(self, backup_dir: Path, store: ObjectStore | None = None, prefix: str = "",
                 save_freq: int | str = "epoch") -> None:
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=True)
        self.store = store
        self.prefix = prefix.rstrip("/")
        #: the backup training started from ({"epoch", "batch"}), None for a fresh start
        self.resumed_from: dict[str, int] | None = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def on_train_begin(self, logs=None):
        folder = Path(self.backup_dir)
        if self.store is not None and self.store.exists(self._key(METADATA_FILE)):
            folder.mkdir(parents=True, exist_ok=True)
            for name in (WEIGHTS_FILE, METADATA_FILE):
                (folder / name).write_bytes(self.store.get_bytes(self._key(name)))
        if (folder / METADATA_FILE).exists():
            self.resumed_from = {k: int(v) for k, v in json.loads((folder / METADATA_FILE).read_text()).items()}
        super().on_train_begin(logs)

    def _save_model(self):  # Keras' hook behind both save frequencies; the upload follows each save
        super()._save_model()
        if self.store is not None:
            for name in (WEIGHTS_FILE, METADATA_FILE):
                self.store.put_file(self._key(name), Path(self.backup_dir) / name)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.store is not None:
            self.store.delete_prefix(self.prefix + "/")
