"""Training loop: one code path for CPU and GPU.

When a GPU is visible the model is built under MirroredStrategy with mixed precision; otherwise the
default strategy in float32. Seeds are fixed, early stopping watches validation AUC, TensorBoard
logs and a training-curve PNG land beside the model.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.models.ensemble import average_models, member_seeds
from shoprank.models.ranker import (
    MAX_BIAS_POSITION,
    POSITION_INPUT,
    FeatureLists,
    build_ranker,
    with_position_bias,
)


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
    # "bce": pointwise binary cross-entropy per row. "listwise": softmax cross-entropy over each
    # user's candidate list (rows sharing user_key and event_timestamp) plus `bce_weight` x BCE.
    # Ranking metrics only care about the order inside a user's list; pointwise BCE also spends
    # capacity on between-user differences (who buys more), which shift from the training weeks to
    # the serving weeks. The BCE term keeps the sigmoid `score` roughly calibrated for serving.
    loss: str = "bce"
    bce_weight: float = 0.1
    # listwise only: early stopping on "val_ndcg" (NDCG@10 inside each validation list: the ranking
    # the metric scores), "val_loss" (the listwise loss) or "val_auc" (row-level, mixes lists)
    monitor: str = "val_auc"
    # members of a seed ensemble (models/ensemble.py): the served score is their mean; 1 = one ranker
    ensemble: int = 1


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
                 log_dir: Path | None = None, verbose: int = 2, features: FeatureLists | None = None) -> TrainResult:
    """Fit the ranker on labelled rows (column `label`) and return it with its curves. `features`:
    the model's input names (default: the recommender's); a `list_id` column, when present, names
    each row's list for the listwise loss (the search ranker's lists are queries)."""
    if train.empty or train["label"].nunique() < 2:
        raise ValueError(f"training set needs both labels; got {len(train)} rows, "
                         f"labels {sorted(train['label'].unique().tolist()) if len(train) else []}")
    if config.loss not in ("bce", "listwise"):
        raise ValueError(f"loss must be 'bce' or 'listwise', got {config.loss!r}")
    if config.ensemble != 1:
        if features is not None:
            raise ValueError("an ensemble trains the recommender's inputs only")
        return train_ensemble(train, validation, config, log_dir, verbose)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    if config.loss == "listwise":
        return _train_listwise(train, validation, config, log_dir, verbose, features)
    strategy, device = distribution()
    x_train, y_train = _inputs(train, features), train["label"].to_numpy(dtype="float32")
    x_val, y_val = _inputs(validation, features), validation["label"].to_numpy(dtype="float32")
    # logged impressions (`shown_position`): train through a position bias, export the ranker without it
    use_position = POSITION_INPUT in train and bool((train[POSITION_INPUT] > 0).any())
    with strategy.scope():
        model = build_ranker(x_train, config.embedding_dim, config.hidden, config.n_cross, config.dropout, features)
        fitted = with_position_bias(model) if use_position else model
        fitted.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy",
                       metrics=[keras.metrics.AUC(name="auc")])
    if use_position:
        x_train[POSITION_INPUT] = train[POSITION_INPUT].to_numpy(dtype="int32")
        x_val[POSITION_INPUT] = np.zeros(len(validation), dtype="int32")  # early stopping judges the served scores
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=config.patience,
                                      restore_best_weights=True),
    ]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    started = time.perf_counter()
    fit = fitted.fit(x_train, y_train, validation_data=(x_val, y_val) if len(validation) else None,
                    epochs=config.epochs, batch_size=config.batch_size, shuffle=True,
                    callbacks=callbacks if len(validation) else callbacks[1:], verbose=verbose)
    elapsed = time.perf_counter() - started
    epochs_run = len(fit.history["loss"])
    extra = {"position_bias": [round(float(b), 4) for b in fitted.get_layer("position_bias").get_weights()[0][:, 0]],
             "shown_rows": int((train[POSITION_INPUT] > 0).sum())} if use_position else {}
    return TrainResult(
        model=model, history={k: [float(v) for v in vals] for k, vals in fit.history.items()},
        examples_per_second=epochs_run * len(train) / max(elapsed, 1e-9), device=device, config=config, extra=extra,
    )


def _inputs(frame: pd.DataFrame, features: FeatureLists | None) -> dict[str, np.ndarray]:
    return model_inputs(frame) if features is None else model_inputs(frame, None, *features)


def list_groups(frame: pd.DataFrame) -> np.ndarray:
    """One integer per row naming its candidate list: `list_id` where given, else the rows of one
    user at one cut-off."""
    if "list_id" in frame:
        return pd.factorize(frame["list_id"])[0]
    keys = [c for c in ("user_key", "event_timestamp") if c in frame]
    return frame.groupby(keys, sort=False).ngroup().to_numpy() if keys else np.zeros(len(frame), dtype=np.int64)


def _list_batches(groups: np.ndarray, rows_per_batch: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Row indices per batch: whole lists (shuffled when `rng` is given) packed to ~rows_per_batch rows."""
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0, True])
    lists = [order[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
    if rng is not None:
        lists = [lists[i] for i in rng.permutation(len(lists))]
    batches, current, size = [], [], 0
    for rows in lists:
        current.append(rows)
        size += len(rows)
        if size >= rows_per_batch:
            batches.append(np.concatenate(current))
            current, size = [], 0
    if current:
        batches.append(np.concatenate(current))
    return batches


def listwise_loss(logits: tf.Tensor, labels: tf.Tensor, segments: tf.Tensor, n_segments: tf.Tensor,
                  bce_weight: float) -> tf.Tensor:
    """Softmax cross-entropy of each list's label distribution (lists without a positive skipped) + BCE.

    segments: 0..n_segments-1, the list of each row. A list with m positives has target 1/m on each.
    """
    seg_max = tf.math.unsorted_segment_max(logits, segments, n_segments)
    shifted = logits - tf.gather(tf.stop_gradient(seg_max), segments)
    log_norm = tf.math.log(tf.math.unsorted_segment_sum(tf.exp(shifted), segments, n_segments))
    n_pos = tf.math.unsorted_segment_sum(labels, segments, n_segments)
    target = labels / tf.maximum(tf.gather(n_pos, segments), 1.0)
    per_list = -tf.math.unsorted_segment_sum(target * (shifted - tf.gather(log_norm, segments)), segments,
                                             n_segments)
    has_pos = tf.cast(n_pos > 0, logits.dtype)
    softmax_ce = tf.reduce_sum(per_list * has_pos) / tf.maximum(tf.reduce_sum(has_pos), 1.0)
    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    return softmax_ce + bce_weight * bce


def list_ndcg(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k of each list's own ranking by `scores` (lists without a positive skipped)."""
    frame = pd.DataFrame({"g": groups, "s": scores, "y": labels})
    frame = frame[frame.groupby("g")["y"].transform("max") > 0]
    if frame.empty:
        return 0.0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    frame["r"] = frame.groupby("g")["s"].rank(method="first", ascending=False).astype(int) - 1
    frame["ideal"] = frame.groupby("g")["y"].rank(method="first", ascending=False).astype(int) - 1
    top = frame[frame["r"] < k]
    dcg = (top["y"] * discount[top["r"]]).groupby(top["g"]).sum()
    ideal = frame[(frame["ideal"] < k) & (frame["y"] > 0)]
    idcg = (ideal["y"] * discount[ideal["ideal"]]).groupby(ideal["g"]).sum()
    return float((dcg.reindex(idcg.index, fill_value=0.0) / idcg).mean())


def nightly_config(epochs: int, seed: int, ensemble: int = 1) -> TrainConfig:
    """How the nightly pipeline's `train` component trains: the listwise loss, early-stopped on the
    validation lists' NDCG@10 (the ranking the blessing metrics score). One place, so a bench that
    wants "what the pipeline would train" gets it."""
    return TrainConfig(epochs=epochs, seed=seed, loss="listwise", learning_rate=3e-3, batch_size=4096,
                       monitor="val_ndcg", ensemble=ensemble)


def _train_listwise(train: pd.DataFrame, validation: pd.DataFrame, config: TrainConfig,
                    log_dir: Path | None, verbose: int, features: FeatureLists | None = None) -> TrainResult:
    """Listwise training loop (custom: Keras' fit has no notion of a row's list). Same model, same export.

    Early stopping keeps the weights of the epoch with the best `config.monitor` (default validation
    AUC, as in the BCE path: it picked better validation recall/NDCG than the validation listwise loss).
    """
    keras.mixed_precision.set_global_policy("float32")  # segment sums in float32; CPU and GPU alike
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    x_train, y_train = _inputs(train, features), train["label"].to_numpy(dtype="float32")
    x_val, y_val = _inputs(validation, features), validation["label"].to_numpy(dtype="float32")
    model = build_ranker(x_train, config.embedding_dim, config.hidden, config.n_cross, config.dropout, features)
    logit_model = keras.Model(model.inputs, model.get_layer("logit").output)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    # logged impressions: a learned logit offset per shown position during training only, as in the
    # BCE path's `with_position_bias`; the exported ranker never sees a position
    use_position = POSITION_INPUT in train and bool((train[POSITION_INPUT] > 0).any())
    positions = train[POSITION_INPUT].to_numpy(dtype="int32") if use_position else np.zeros(len(train), "int32")
    position_bias = tf.Variable(tf.zeros([MAX_BIAS_POSITION + 1]), name="position_bias")
    variables = [*logit_model.trainable_variables, *([position_bias] if use_position else [])]
    groups = list_groups(train)
    val_groups = list_groups(validation) if len(validation) else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(config.seed)

    def feed(x: dict[str, np.ndarray], rows: np.ndarray, grp: np.ndarray) -> tuple[dict, np.ndarray, int]:
        seg = pd.factorize(grp[rows])[0].astype("int32")
        return {k: v[rows] for k, v in x.items()}, seg, int(seg.max()) + 1

    @tf.function(reduce_retracing=True)
    def step(inputs, labels, segments, n_segments, shown):
        with tf.GradientTape() as tape:
            logits = tf.reshape(logit_model(inputs, training=True), [-1])
            logits += tf.gather(position_bias, tf.clip_by_value(shown, 0, MAX_BIAS_POSITION)) \
                * tf.cast(shown > 0, tf.float32)
            loss = listwise_loss(logits, labels, segments, n_segments, config.bce_weight)
            loss += tf.add_n(logit_model.losses) if logit_model.losses else 0.0
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function(reduce_retracing=True)
    def evaluate(inputs, labels, segments, n_segments):
        logits = tf.reshape(logit_model(inputs, training=False), [-1])
        return listwise_loss(logits, labels, segments, n_segments, config.bce_weight), tf.sigmoid(logits)

    def run_validation(x, y, grp) -> tuple[float, float, float]:
        auc, losses, weights, parts = keras.metrics.AUC(), [], [], []
        for rows in _list_batches(grp, 65536, None):
            inputs, seg, n = feed(x, rows, grp)
            loss, scores = evaluate(inputs, tf.constant(y[rows]), tf.constant(seg), tf.constant(n))
            auc.update_state(y[rows], scores)
            losses.append(float(loss))
            weights.append(len(rows))
            parts.append((rows, scores.numpy()))
        order = np.concatenate([r for r, _ in parts])
        ndcg = list_ndcg(np.concatenate([s for _, s in parts]), y[order], grp[order])
        return float(np.average(losses, weights=weights)), float(auc.result()), ndcg

    history: dict[str, list[float]] = {"loss": [], "auc": [], "val_loss": [], "val_auc": [], "val_ndcg": []}
    best, best_weights, waited, elapsed = -np.inf, None, 0, 0.0
    writer = tf.summary.create_file_writer(str(log_dir)) if log_dir is not None else None
    for epoch in range(config.epochs):
        started = time.perf_counter()
        losses = []
        for rows in _list_batches(groups, config.batch_size, rng):
            inputs, seg, n = feed(x_train, rows, groups)
            losses.append(float(step(inputs, tf.constant(y_train[rows]), tf.constant(seg), tf.constant(n),
                                     tf.constant(positions[rows]))))
        elapsed += time.perf_counter() - started
        history["loss"].append(float(np.mean(losses)))
        sample = rng.choice(len(y_train), min(len(y_train), 200_000), replace=False)
        history["auc"].append(run_validation({k: v[sample] for k, v in x_train.items()}, y_train[sample],
                                             groups[sample])[1])
        if len(validation):
            val_loss, val_auc, val_ndcg = run_validation(x_val, y_val, val_groups)
            history["val_loss"].append(val_loss)
            history["val_auc"].append(val_auc)
            history["val_ndcg"].append(val_ndcg)
        if writer is not None:
            with writer.as_default():
                for key, values in history.items():
                    if values:
                        tf.summary.scalar(key, values[-1], step=epoch)
        if verbose:
            print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items() if v))
        if not len(validation):
            continue
        current = -history["val_loss"][-1] if config.monitor == "val_loss" else history[config.monitor][-1]
        if current > best:
            best, best_weights, waited = current, model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    history = {k: v for k, v in history.items() if v}
    extra = {"position_bias": [round(float(b), 4) for b in position_bias.numpy()],
             "shown_rows": int((positions > 0).sum())} if use_position else {}
    return TrainResult(model=model, history=history,
                       examples_per_second=len(history["loss"]) * len(train) / max(elapsed, 1e-9), device=device,
                       config=config, extra=extra)


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


def train_ensemble(train: pd.DataFrame, validation: pd.DataFrame, config: TrainConfig,
                   log_dir: Path | None = None, verbose: int = 2) -> TrainResult:
    """Train `config.ensemble` rankers (seeds from `member_seeds`) and return their average as one result.

    The history is the first member's (the curves in the report); every member's history is in
    `extra["members"]`. Throughput counts the examples of all members over their summed time.
    """
    results = []
    for j, seed in enumerate(member_seeds(config.seed, config.ensemble)):
        member_config = dataclasses.replace(config, seed=seed, ensemble=1)
        results.append(train_ranker(train, validation, member_config,
                                    log_dir=Path(log_dir) / f"member_{j}" if log_dir is not None else None,
                                    verbose=verbose))
    examples = sum(len(r.history["loss"]) * len(train) for r in results)
    seconds = sum(len(r.history["loss"]) * len(train) / max(r.examples_per_second, 1e-9) for r in results)
    members = [{"seed": s, "epochs": len(r.history["loss"]), "history": r.history}
               for s, r in zip(member_seeds(config.seed, config.ensemble), results, strict=True)]
    return TrainResult(model=average_models([r.model for r in results]), history=results[0].history,
                       examples_per_second=examples / max(seconds, 1e-9), device=results[0].device, config=config,
                       extra={"members": members})
