"""A train step killed in the middle of an epoch (a spot node gone) resumes from its last backup.

The first run is SIGKILLed from inside a batch, with no chance to clean up, as a vanished node
would be. The second run starts on a "new node" (an empty local folder): it must fetch the backup
from the store, start at the epoch the backup names, and end with a model as good as an
uninterrupted run's. A finished run leaves no backup behind.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shoprank.evaluation.ranking import auc
from shoprank.features.derived import model_inputs
from shoprank.models.export import score_saved_model
from shoprank.models.train import TrainConfig, train_ranker
from shoprank.storage import LocalStore
from tests.conftest import tiny_examples

REPO = Path(__file__).resolve().parents[2]
PREFIX = "training-backups/run"
CONFIG = {"epochs": 4, "batch_size": 200, "seed": 1, "backup_every": 5, "patience": 4}

RUN = """
import json, os, signal, sys
from pathlib import Path

import keras

from shoprank.models.export import export_saved_model
from shoprank.models.train import Backup, TrainConfig, train_ranker
from shoprank.storage import LocalStore
from tests.conftest import tiny_examples

store_root, kill_at, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])


class Preempted(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


result = train_ranker(tiny_examples(4000), tiny_examples(1000, seed=1), TrainConfig(**json.loads(sys.argv[4])),
                      verbose=0, backup=Backup(out / "local", LocalStore(store_root), sys.argv[5]),
                      callbacks=[Preempted()] if kill_at else [])
(out / "result.json").write_text(json.dumps({"resumed_from": result.resumed_from, "history": result.history}))
export_saved_model(result.model, out / "ranker")
"""


def _run(tmp_path: Path, store: Path, kill_at: int, node: str) -> subprocess.CompletedProcess:
    out = tmp_path / node
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", RUN, str(store), str(kill_at), str(out), json.dumps(CONFIG), PREFIX],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_a_run_killed_mid_epoch_resumes_from_its_last_backup(tmp_path):
    store = tmp_path / "store"
    # 4,000 rows in lists of 20, 200 rows a batch: 20 batches an epoch, a backup every 5 batches.
    # Killed at the 33rd batch (epoch 2, batch 13): the last backup is epoch 2's 10th batch.
    killed = _run(tmp_path, store, kill_at=33, node="node-a")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "node-a" / "result.json").exists()
    assert json.loads((store / PREFIX / "training_metadata.json").read_text()) == {"epoch": 1, "batch": 9}

    resumed = _run(tmp_path, store, kill_at=0, node="node-b")  # another node: nothing local survives
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads((tmp_path / "node-b" / "result.json").read_text())
    assert result["resumed_from"] == {"epoch": 1, "batch": 9}
    assert len(result["history"]["loss"]) == CONFIG["epochs"] - 1  # epochs 2-4: epoch 1 was not run again
    assert LocalStore(store).list(PREFIX) == []  # a finished run deletes its backup

    whole = train_ranker(tiny_examples(4000), tiny_examples(1000, seed=1), TrainConfig(**CONFIG), verbose=0)
    assert whole.resumed_from is None
    test = tiny_examples(1000, seed=7)
    labels = test["label"].to_numpy()
    resumed_auc = auc(labels, score_saved_model(str(tmp_path / "node-b" / "ranker"), model_inputs(test)))
    whole_auc = auc(labels, whole.model.predict(model_inputs(test), verbose=0).reshape(-1))
    assert resumed_auc == pytest.approx(whole_auc, abs=0.02) and resumed_auc > 0.8
    assert max(result["history"]["val_ndcg"]) == pytest.approx(max(whole.history["val_ndcg"]), abs=0.03)


def test_a_backup_mirrors_to_the_store_after_each_save_and_goes_when_training_ends(tmp_path, monkeypatch):
    from shoprank.models.checkpoints import METADATA_FILE, StoreBackupAndRestore
    from shoprank.models.train import Backup

    store = LocalStore(tmp_path / "store")
    seen: list[dict] = []

    class Watch(StoreBackupAndRestore):
        def _save_model(self):
            super()._save_model()
            seen.append(json.loads(store.get_bytes(f"{PREFIX}/{METADATA_FILE}")))

    monkeypatch.setattr("shoprank.models.train.StoreBackupAndRestore", Watch)
    train_ranker(tiny_examples(2000), tiny_examples(400, seed=1), TrainConfig(epochs=2, batch_size=200, backup_every=4),
                 verbose=0, backup=Backup(tmp_path / "local", store, PREFIX))
    # 10 batches an epoch, a backup every 4: after batches 4 and 8 of epoch 1, then 2, 6, 10 of epoch 2
    assert seen == [{"epoch": 0, "batch": 3}, {"epoch": 0, "batch": 7}, {"epoch": 1, "batch": 1},
                    {"epoch": 1, "batch": 5}, {"epoch": 1, "batch": 9}]
    assert store.list(PREFIX) == [] and not (tmp_path / "local").exists()


def test_mixed_bfloat16_trains_on_cpu_and_exports_a_float32_ranker(tmp_path):
    import keras
    import tensorflow as tf

    from shoprank.models.export import export_saved_model

    before = keras.mixed_precision.global_policy().name
    result = train_ranker(tiny_examples(3000), tiny_examples(600, seed=1),
                          TrainConfig(epochs=3, batch_size=200, precision="mixed_bfloat16"), verbose=0)
    assert result.precision == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before  # the run does not change the next one's
    assert not [layer.name for layer in result.model.layers if layer.dtype_policy.name.startswith("mixed")]
    test = tiny_examples(500, seed=3)
    scores = result.model.predict(model_inputs(test), verbose=0).reshape(-1)
    assert auc(test["label"].to_numpy(), scores) > 0.8
    served = tf.saved_model.load(str(export_saved_model(result.model, tmp_path / "ranker")))
    out = served.signatures["serving_default"](**{k: tf.constant(v) for k, v in model_inputs(test).items()})["score"]
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), scores, rtol=1e-5, atol=1e-6)


def test_listwise_training_names_what_a_row_without_lists_lacks():
    rows = tiny_examples().drop(columns=["user_key"])
    with pytest.raises(ValueError, match="user_key"):
        train_ranker(rows, rows, TrainConfig(epochs=1), verbose=0)
