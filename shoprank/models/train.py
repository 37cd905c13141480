"""Training the ranker the Keras way: the model owns its loss; `fit`, callbacks and tf.distribute do the rest.

`RankingModel` wraps the scoring ranker (`models.ranker`, the model that is exported) and overrides
`compute_loss`, as TFRS's `models/base.py` does: the listwise softmax over each candidate list reads
the list of every row from the batch itself (`list_segment`), so Keras' own `fit` trains it, with
early stopping, TensorBoard, a backup that survives preemption (`models.checkpoints`) and, on GPUs,
MirroredStrategy and mixed precision. The same code runs on CPU in the tests, with `mixed_bfloat16`
where a test asks for it. Whatever the training precision, the exported ranker computes in float32.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.features.example_parts import ExampleParts
from shoprank.models.checkpoints import StoreBackupAndRestore
from shoprank.models.ensemble import average_models, member_seeds
from shoprank.models.ranker import MAX_BIAS_POSITION, POSITION_INPUT, FeatureLists, build_ranker
from shoprank.storage import ObjectStore

SEGMENT_INPUT = "list_segment"  # each row's list inside its batch: 0..n-1, what the listwise loss groups by
LOSSES = ("listwise", "bce")
MONITORS = {"val_ndcg": "max", "val_auc": "max", "val_loss": "min"}


@dataclass
class TrainConfig:
    """How the ranker trains. The defaults are what production trains (the nightly pipeline's `train`)."""

    epochs: int = 6
    batch_size: int = 4096  # rows per batch, packed from whole lists
    learning_rate: float = 3e-3
    embedding_dim: int = 16
    hidden: int = 64
    n_cross: int = 2
    dropout: float = 0.1
    patience: int = 2
    seed: int = 0
    # "listwise": softmax cross-entropy over each user's candidate list (rows sharing user_key and
    # event_timestamp, or `list_id`) plus `bce_weight` x BCE. Ranking metrics only care about the order
    # inside a user's list; pointwise BCE ("bce") also spends capacity on between-user differences (who
    # buys more), which shift from the training weeks to the serving weeks. The BCE term keeps the
    # sigmoid `score` roughly calibrated for serving.
    loss: str = "listwise"
    bce_weight: float = 0.1
    # early stopping: "val_ndcg" (NDCG@10 inside each validation list: the ranking the blessing metrics
    # score), "val_auc" (row level, mixes lists) or "val_loss"
    monitor: str = "val_ndcg"
    # members of a seed ensemble (models/ensemble.py): the served score is their mean; 1 = one ranker
    ensemble: int = 1
    # Keras dtype policy: "auto" is mixed_float16 on GPUs and float32 on CPU
    precision: str = "auto"
    # batches between backups when training is given a backup folder (one backup per epoch as well)
    backup_every: int = 200

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        if self.precision not in ("auto", "float32", "mixed_float16", "mixed_bfloat16"):
            raise ValueError("precision must be auto, float32, mixed_float16 or mixed_bfloat16, "
                             f"got {self.precision!r}")


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    examples_per_second: float
    device: str
    config: TrainConfig
    precision: str = "float32"
    train_seconds: float = 0.0
    accelerators: int = 0  # GPUs training held
    resumed_from: dict[str, int] | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Backup:
    """Where a training run keeps its backup: a local folder, mirrored under `prefix` of `store` if given."""

    folder: Path
    store: ObjectStore | None = None
    prefix: str = ""

    def member(self, j: int) -> Backup:
        return Backup(self.folder / f"member_{j}", self.store, f"{self.prefix.rstrip('/')}/member_{j}")


def distribution(precision: str = "auto") -> tuple[tf.distribute.Strategy, str, str]:
    """(strategy, device, dtype policy): MirroredStrategy and mixed_float16 on GPUs, the default
    strategy and float32 on CPU; `precision` other than "auto" names the policy."""
    gpus = tf.config.list_physical_devices("GPU")
    policy = precision if precision != "auto" else ("mixed_float16" if gpus else "float32")
    if gpus:
        return tf.distribute.MirroredStrategy(), f"{len(gpus)}x GPU", policy
    return tf.distribute.get_strategy(), "CPU", policy


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy for the block only: a training run must not change the next one's."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


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


class RankingModel(keras.Model):
    """The ranker in training: its logit, plus a learned bias per shown position, under the chosen loss.

    Logged impressions (`shown_position` > 0) train through the position bias, a "shallow tower" as in
    position-bias aware learning: a click at position 1 says less about the item than one at position
    8, since position 1 is looked at more; the bias absorbs that, so the ranker's own weights learn the
    item's appeal. Only `ranker` is exported: serving scores are position-free. Rows never shown
    (position 0) get no bias; validation feeds no position at all.
    """

    def __init__(self, ranker: keras.Model, loss: str, bce_weight: float, positions: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ranker = ranker
        self.logit_model = keras.Model(ranker.inputs, ranker.get_layer("logit").output, name="ranker_logit")
        self.feature_names = [inp.name.split(":")[0] for inp in ranker.inputs]
        self.loss_kind = loss
        self.bce_weight = bce_weight
        self.position_bias = keras.layers.Embedding(MAX_BIAS_POSITION + 1, 1, embeddings_initializer="zeros",
                                                    name="position_bias", dtype="float32")
        self.position_bias.build((None,))  # built with the model, fed or not: backups restore into it
        self.position_bias.trainable = positions  # trained only where the rows carry shown positions

    def call(self, inputs, training=False):
        logits = tf.reshape(self.logit_model({k: inputs[k] for k in self.feature_names}, training=training), [-1])
        logits = tf.cast(logits, tf.float32)
        if POSITION_INPUT in inputs:
            shown = tf.reshape(inputs[POSITION_INPUT], [-1])
            bias = tf.reshape(self.position_bias(tf.clip_by_value(shown, 0, MAX_BIAS_POSITION)), [-1])
            logits += bias * tf.cast(shown > 0, tf.float32)
        return logits

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        labels = tf.cast(tf.reshape(y, [-1]), tf.float32)
        if self.loss_kind == "listwise":
            segments = tf.cast(tf.reshape(x[SEGMENT_INPUT], [-1]), tf.int32)
            loss = listwise_loss(y_pred, labels, segments, tf.reduce_max(segments) + 1, self.bce_weight)
        else:
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=y_pred))
        if self.losses:  # the ranker's embedding regularisers
            loss += tf.add_n([tf.cast(extra, tf.float32) for extra in self.losses])
        # Keras' own losses scale by the replicas (gradients are summed across them); an override must too
        return loss / tf.distribute.get_strategy().num_replicas_in_sync


def list_groups(frame: pd.DataFrame) -> np.ndarray:
    """One integer per row naming its candidate list: `list_id` where given, else the rows of one
    user at one cut-off."""
    if "list_id" in frame:
        return pd.factorize(frame["list_id"])[0]
    keys = [c for c in ("user_key", "event_timestamp") if c in frame]
    return frame.groupby(keys, sort=False).ngroup().to_numpy() if keys else np.zeros(len(frame), dtype=np.int64)


def list_batches(groups: np.ndarray, rows_per_batch: int, rng: np.random.Generator | None) -> list[np.ndarray]:
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


def _list_batches_of(x: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, rows_per_batch: int,
                     rng: np.random.Generator | None) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    for rows in list_batches(groups, rows_per_batch, rng):
        inputs = {k: v[rows] for k, v in x.items()}
        inputs[SEGMENT_INPUT] = pd.factorize(groups[rows])[0].astype("int32")
        yield inputs, y[rows]


def _signature(x: dict[str, np.ndarray]) -> tuple[dict[str, tf.TensorSpec], tf.TensorSpec]:
    specs = {k: tf.TensorSpec([None], tf.string if v.dtype == object else tf.as_dtype(v.dtype)) for k, v in x.items()}
    specs[SEGMENT_INPUT] = tf.TensorSpec([None], tf.int32)
    return specs, tf.TensorSpec([None], tf.float32)


def list_dataset(x: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, rows_per_batch: int,
                 rng: np.random.Generator | None) -> tf.data.Dataset:
    """Batches of whole lists as `(inputs + list_segment, labels)`; reshuffled at each epoch when `rng`
    is given, in a fixed order otherwise (`list_order` gives that order's rows)."""
    dataset = tf.data.Dataset.from_generator(lambda: _list_batches_of(x, y, groups, rows_per_batch, rng),
                                             output_signature=_signature(x))
    # training repeats (a pass is reshuffled each time) and `fit` counts `steps_per_epoch` batches: the
    # packing of shuffled lists varies by a batch or two from pass to pass, and Keras would otherwise
    # fix an epoch's length at the first pass's and cut later passes short or drop their tail
    if rng is not None:
        return dataset.repeat().prefetch(2)
    return dataset.apply(tf.data.experimental.assert_cardinality(len(list_batches(groups, rows_per_batch, None))))


def parts_dataset(parts: ExampleParts, inputs: Callable[[pd.DataFrame], dict[str, np.ndarray]],
                  sample: dict[str, np.ndarray], config: TrainConfig,
                  rng: np.random.Generator) -> tuple[tf.data.Dataset, int]:
    """Training batches streamed from a parts file, one row group in memory at a time: each pass takes
    the parts in a new random order and shuffles the lists inside each part (lists never mix parts,
    so the shuffle is within a part, across its ~thousands of lists). `sample`: inputs of some rows,
    for the dataset's signature. Returns the repeating dataset and the batches of one pass (a part's
    rows over the batch size, at least one per part)."""
    def batches():
        for frame in parts.frames(rng):
            x = inputs(frame)
            yield from _list_batches_of(x, frame["label"].to_numpy(dtype="float32"),
                                        _training_groups(frame, config), config.batch_size, rng)

    steps = sum(max(1, round(rows / config.batch_size)) for rows in parts.rows_per_part if rows)
    return tf.data.Dataset.from_generator(batches, output_signature=_signature(sample)).repeat().prefetch(2), steps


def list_order(groups: np.ndarray, rows_per_batch: int) -> np.ndarray:
    """The rows of an unshuffled `list_dataset`, in the order it yields them."""
    return np.concatenate(list_batches(groups, rows_per_batch, None)) if len(groups) else np.zeros(0, dtype=np.int64)


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


class ValidationListNDCG(keras.callbacks.Callback):
    """`val_ndcg` in each epoch's logs: NDCG@10 of every validation list ranked by the model. Listed
    before EarlyStopping, TensorBoard and the history, which read the same logs after it."""

    def __init__(self, dataset: tf.data.Dataset, labels: np.ndarray, groups: np.ndarray) -> None:
        super().__init__()
        self.dataset, self.labels, self.groups = dataset, labels, groups

    def on_epoch_end(self, epoch, logs=None):
        scores = self.model.predict(self.dataset, verbose=0).reshape(-1)
        if logs is not None:
            logs["val_ndcg"] = list_ndcg(scores, self.labels, self.groups)


class EpochClock(keras.callbacks.Callback):
    """Seconds spent in training epochs (validation excluded): the examples/s the card reports."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds, self.epochs, self._started, self._last = 0.0, 0, 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += self._last - self._started
        self.epochs += 1


def _training_groups(frame: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """The lists batches are packed from: the candidate lists for the listwise loss, each row alone
    for BCE (rows are independent there, and one shopper's rows need not share a batch)."""
    if config.loss == "bce":
        return np.arange(len(frame))
    if "list_id" not in frame and not {"user_key", "event_timestamp"} <= set(frame.columns):
        raise ValueError("the listwise loss ranks inside candidate lists: the rows need `list_id`, or "
                         f"`user_key` and `event_timestamp`; got columns {sorted(frame.columns)[:12]}...")
    return list_groups(frame)


def _inputs(frame: pd.DataFrame, features: FeatureLists | None) -> dict[str, np.ndarray]:
    return model_inputs(frame) if features is None else model_inputs(frame, None, *features)


def train_ranker(train: pd.DataFrame | ExampleParts, validation: pd.DataFrame, config: TrainConfig | None = None,
                 log_dir: Path | None = None, verbose: int = 2, features: FeatureLists | None = None,
                 backup: Backup | None = None, callbacks: list[keras.callbacks.Callback] | None = None) -> TrainResult:
    """Fit the ranker on labelled rows (column `label`) and return it with its curves.

    `train`: the rows in memory, or a parts file's training rows (`ExampleParts`), streamed a part at a
    time so the training set may be larger than memory (the normalisation adapts to the first part).
    `features`: the model's input names (default: the recommender's); a `list_id` column, when
    present, names each row's list (the search ranker's lists are queries). `backup`: where the run
    backs itself up, so a rerun after a kill resumes there. `callbacks` run after the trainer's own.
    """
    config = config or TrainConfig()
    streamed = isinstance(train, ExampleParts)
    sample = train.first() if streamed and train.rows else train if not streamed else pd.DataFrame()
    if sample.empty or sample["label"].nunique() < 2:
        raise ValueError(f"training set needs both labels; got {len(sample)} rows"
                         f"{' in its first part' if streamed else ''}, labels "
                         f"{sorted(sample['label'].unique().tolist()) if len(sample) else []}")
    if config.ensemble != 1:
        if features is not None:
            raise ValueError("an ensemble trains the recommender's inputs only")
        return train_ensemble(train, validation, config, log_dir, verbose, backup)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    strategy, device, policy = distribution(config.precision)
    shown = train.count_positive(POSITION_INPUT) if streamed else \
        int((sample[POSITION_INPUT] > 0).sum()) if POSITION_INPUT in sample else 0
    use_position = shown > 0

    def inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        x = _inputs(frame, features)
        if use_position:
            x[POSITION_INPUT] = frame[POSITION_INPUT].to_numpy(dtype="int32")
        return x

    rng = np.random.default_rng(config.seed)
    x_sample = inputs(sample)
    if streamed:
        train_data, steps = parts_dataset(train, inputs, x_sample, config, rng)
        n_rows = train.rows
    else:
        groups = _training_groups(train, config)
        train_data = list_dataset(x_sample, train["label"].to_numpy(dtype="float32"), groups, config.batch_size, rng)
        steps, n_rows = len(list_batches(groups, config.batch_size, None)), len(train)
    with dtype_policy(policy), strategy.scope():
        ranker = build_ranker(x_sample, config.embedding_dim, config.hidden, config.n_cross, config.dropout, features)
        model = RankingModel(ranker, config.loss, config.bce_weight, use_position, name="ranking_model")
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
        model(next(iter(train_data))[0])  # built before fit: a backup restores into built variables
    clock = EpochClock()
    own: list[keras.callbacks.Callback] = [clock]
    validation_data = None
    if len(validation):
        x_val, y_val = _inputs(validation, features), validation["label"].to_numpy(dtype="float32")
        val_groups = _training_groups(validation, config)
        validation_data = list_dataset(x_val, y_val, val_groups, 65_536, None)
        order = list_order(val_groups, 65_536)
        own += [ValidationListNDCG(validation_data, y_val[order], val_groups[order]),
                keras.callbacks.EarlyStopping(monitor=config.monitor, mode=MONITORS[config.monitor],
                                              patience=config.patience, restore_best_weights=True)]
    restore = None
    if backup is not None:
        restore = StoreBackupAndRestore(backup.folder, backup.store, backup.prefix, save_freq=config.backup_every)
        own.append(restore)
    if log_dir is not None:
        own.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
    fit = model.fit(train_data, validation_data=validation_data, epochs=config.epochs, shuffle=False,
                    steps_per_epoch=steps, callbacks=[*own, *(callbacks or [])], verbose=verbose)
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    serving = _float32_ranker(ranker, x_sample, config, features) if policy != "float32" else ranker
    extra = {"position_bias": [round(float(b), 4) for b in model.position_bias.get_weights()[0][:, 0]],
             "shown_rows": shown} if use_position else {}
    if streamed:
        extra["streamed"] = {"parts": train.n_parts, "rows": n_rows, "batches_per_epoch": steps}
    return TrainResult(model=serving, history=history,
                       examples_per_second=clock.epochs * n_rows / max(clock.seconds, 1e-9), device=device,
                       config=config, precision=policy, train_seconds=clock.seconds,
                       accelerators=strategy.num_replicas_in_sync if device != "CPU" else 0,
                       resumed_from=restore.resumed_from if restore is not None else None, extra=extra)


def _float32_ranker(trained: keras.Model, sample: dict[str, np.ndarray], config: TrainConfig,
                    features: FeatureLists | None) -> keras.Model:
    """The trained ranker rebuilt under float32 with its weights: what is exported and served (CPU
    model servers compute float32; the variables were float32 all along, only the arithmetic was not)."""
    with dtype_policy("float32"):
        small = {k: v[:256] for k, v in sample.items()}
        ranker = build_ranker(small, config.embedding_dim, config.hidden, config.n_cross, config.dropout, features)
    ranker.set_weights(trained.get_weights())
    return ranker


def plot_curves(history: dict[str, list[float]], path: Path) -> Path:
    """Loss and AUC per epoch, train vs validation, as a PNG for the run report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("loss", "auc", "ndcg") if m in history or f"val_{m}" in history] or ["loss"]
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


def train_ensemble(train: pd.DataFrame | ExampleParts, validation: pd.DataFrame, config: TrainConfig,
                   log_dir: Path | None = None, verbose: int = 2, backup: Backup | None = None) -> TrainResult:
    """Train `config.ensemble` rankers (seeds from `member_seeds`) and return their average as one result.

    The history is the first member's (the curves in the report); every member's history is in
    `extra["members"]`. Throughput counts the examples of all members over their summed time.
    """
    results = []
    for j, seed in enumerate(member_seeds(config.seed, config.ensemble)):
        member_config = dataclasses.replace(config, seed=seed, ensemble=1)
        results.append(train_ranker(train, validation, member_config,
                                    log_dir=Path(log_dir) / f"member_{j}" if log_dir is not None else None,
                                    verbose=verbose, backup=backup.member(j) if backup is not None else None))
    seconds = sum(r.train_seconds for r in results)
    examples = sum(r.examples_per_second * r.train_seconds for r in results)
    members = [{"seed": s, "epochs": len(r.history["loss"]), "history": r.history}
               for s, r in zip(member_seeds(config.seed, config.ensemble), results, strict=True)]
    first = results[0]
    return TrainResult(model=average_models([r.model for r in results]), history=first.history,
                       examples_per_second=examples / max(seconds, 1e-9), device=first.device, config=config,
                       precision=first.precision, train_seconds=seconds, accelerators=first.accelerators,
                       resumed_from=next((r.resumed_from for r in results if r.resumed_from), None),
                       extra={"members": members})
