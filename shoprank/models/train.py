"""Training loop: one code path for CPU and GPU.

When a GPU is visible the model is built under MirroredStrategy with mixed precision; otherwise the
default strategy in float32. Seeds are fixed, early stopping watches validation AUC, TensorBoard
logs and a training-curve PNG land beside the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.models.ranker import build_ranker


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 2048
    learning_rate: float = 2e-3
    embedding_dim: int = 16
    hidden: int = 64
    n_cross: int = 2
    dropout: float = 0.1
    patience: int = 2
    seed: int = 0


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    examples_per_second: float
    device: str
    config: TrainConfig
    extra: dict = field(default_factory=dict)


def distribution() -> tuple[tf.distribute.Strategy, str]:
    """MirroredStrategy + mixed precision on GPUs, the default strategy on CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.MirroredStrategy(), f"{len(gpus)}x GPU"
    keras.mixed_precision.set_global_policy("float32")
    return tf.distribute.get_strategy(), "CPU"


def train_ranker(train: pd.DataFrame, validation: pd.DataFrame, config: TrainConfig,
                 log_dir: Path | None = None, verbose: int = 2) -> TrainResult:
    """Fit the ranker on labelled rows (column `label`) and return it with its curves."""
    if train.empty or train["label"].nunique() < 2:
        raise ValueError(f"training set needs both labels; got {len(train)} rows, "
                         f"labels {sorted(train['label'].unique().tolist()) if len(train) else []}")
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    strategy, device = distribution()
    x_train, y_train = model_inputs(train), train["label"].to_numpy(dtype="float32")
    x_val, y_val = model_inputs(validation), validation["label"].to_numpy(dtype="float32")
    with strategy.scope():
        model = build_ranker(x_train, config.embedding_dim, config.hidden, config.n_cross, config.dropout)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy",
                      metrics=[keras.metrics.AUC(name="auc")])
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=config.patience,
                                      restore_best_weights=True),
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    started = time.perf_counter()
    fit = model.fit(x_train, y_train, validation_data=(x_val, y_val) if len(validation) else None,
                    epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
                    callbacks=callbacks if len(validation) else callbacks[1:], verbose=verbose)
    elapsed = time.perf_counter() - started
    epochs_run = len(fit.history["loss"])
    return TrainResult(
        model=model, history={k: [float(v) for v in vals] for k, vals in fit.history.items()},
        examples_per_second=epochs_run * len(train) / max(elapsed, 1e-9), device=device, config=config,
    )


def model_card(result: TrainResult, data_interval: dict, metrics: dict | None = None, name: str = "ranker") -> dict:
    """What is saved with the model: data interval, parameters, curves, device, throughput, metrics."""
    from dataclasses import asdict

    from shoprank.features.derived import MODEL_INPUTS

    return {"model": name, "data_interval": data_interval, "parameters": asdict(result.config),
            "inputs": list(MODEL_INPUTS), "history": result.history, "device": result.device,
            "examples_per_second": result.examples_per_second, "metrics": metrics or {}}


def plot_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Loss and AUC per epoch, train vs validation, as a PNG for the run report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("loss", "auc") if m in history or f"val_{m}" in history] or ["loss"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            if key in history:
                ax.plot(np.arange(1, len(history[key]) + 1), history[key], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
