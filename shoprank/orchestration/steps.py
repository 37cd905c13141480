"""The public pipeline's steps as plain functions over paths and settings.

They start from the crossing the private stage handed over (`orchestration.private`): nothing here
reads `curated/`, `served/` or `state/`, or holds the pseudonymisation key. KFP components
(components/) are thin adapters around these; tests and the benches call them directly. Each step
reads its inputs, writes its outputs atomically and returns small metrics.

Each KFP step runs in its own process, so the heavy libraries one step needs (TensorFlow for train,
evaluate and infra-validate) are imported inside that step's function, never at the top: the other
steps' processes start without them.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from shoprank.data.ingest import Interval
from shoprank.data.schema import ITEMS
from shoprank.evaluation.blessing import BlessingRules, load_rules
from shoprank.evaluation.judge import Evaluation, judge
from shoprank.evaluation.off_policy import served_report
from shoprank.evaluation.ranking import auc, rank_by_score, score_examples, served_list_metrics
from shoprank.features import store as feast_store
from shoprank.features.choices import erased, opted_out
from shoprank.features.crossing import Crossing, CrossingError, read_crossing, table_bytes
from shoprank.features.definitions import USER_LIST_FEATURES
from shoprank.features.engine.runner import compute_tables, read_snapshot, snapshot_parts
from shoprank.features.example_parts import LISTS_PER_PART, ExampleParts, PartWriter, user_parts
from shoprank.features.session_inputs import SESSION_WINDOW, add_session_inputs, item_categories
from shoprank.features.training_set import (
    CANDIDATE_LISTS,
    SERVED_TEST,
    TrainingSetConfig,
    add_requests,
    add_shown,
    build_examples,
    label_cutoffs,
    popular_at,
    ranker_impressions,
    sample_users,
    truth_sets,
    with_features,
)
from shoprank.layout import (
    CATALOGUE_KEY,
    ITEM_NEIGHBOURS_KEY,
    KEY_RECORD,
    POPULAR_KEY,
    SEARCH_SERVING_KEY,
    SIMILAR_ITEMS_KEY,
)
from shoprank.models import MODEL_NAME
from shoprank.search.rules import SearchServing
from shoprank.search.similar import similar_items
from shoprank.serving import SERVED_LABEL
from shoprank.settings import Settings, load_settings
from shoprank.storage import open_for, replacing_dir, write_parquet

CROSSING_FILE = "crossing.json"  # in the `crossing` artifact: the manifest the night started from
SNAPSHOT_FILES = {"user_stats": "user_stats.parquet", "item_stats": "item_stats.parquet"}
ENGINE_TABLES = "tables"  # in the `snapshots` artifact: the feature job's own output, per table and time


def receive(crossing_key: str, crossing_out: Path, tables_out: dict[str, Path],
            settings: Settings | None = None) -> Crossing:
    """The public pipeline's first step: take the private stage's crossing (checked against its
    manifest) and hand its tables on as artifacts; the crossing's manifest (interval, snapshot
    times, key id) becomes the `crossing` artifact the later steps read instead of re-deriving them."""
    settings = settings or load_settings()
    store = open_for(settings)
    deadline = time.monotonic() + settings.crossing_wait_s
    while True:  # a crossing still arriving (replication) is missing or torn for a while
        try:
            crossing = read_crossing(store, crossing_key)
            tables = {name: table_bytes(store, crossing, name) for name in tables_out}
            break
        except CrossingError as err:
            if time.monotonic() >= deadline:
                waited = f"waited {settings.crossing_wait_s:.0f} s: setting crossing_wait_s"
                raise CrossingError(f"{err} ({waited})") from err
            print(f"receive: the crossing is not complete yet ({err}); waiting", flush=True)
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
    for name, path in tables_out.items():  # as the bytes that were checked: no step reads them whole
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(tables.pop(name))
    Path(crossing_out).parent.mkdir(parents=True, exist_ok=True)
    Path(crossing_out).write_text(json.dumps(crossing.as_dict(), indent=2))
    return crossing


def read_crossing_artifact(path: Path | None, step: str) -> dict:
    """The `crossing` artifact `receive` wrote: the manifest the night started from."""
    folder = need(path, step, "crossing", "the receive step's crossing manifest")
    return json.loads((folder / CROSSING_FILE if folder.is_dir() else folder).read_text())


def crossing_times(crossing: dict) -> list[pd.Timestamp]:
    return [pd.Timestamp(t) for t in crossing["snapshot_times"]]


def snapshots(crossing_path: Path, interactions_path: Path, catalogue_path: Path, snapshots_out: Path,
              settings: Settings | None = None, run_id: str = "") -> dict:
    """The feature job (`features/engine/`, on the engine the settings name) at the crossing's snapshot
    times: the user and item snapshots, checked against the Feast schemas, become the Feast offline
    sources and the `snapshots` artifact; the newest item neighbours go in the artifact for the
    `neighbours` step. Rows stream from the job's files a row group at a time."""
    settings = settings or load_settings()
    crossing = read_crossing_artifact(crossing_path, "snapshots")
    times = crossing_times(crossing)
    out = Path(snapshots_out)
    out.mkdir(parents=True, exist_ok=True)
    tables = out / ENGINE_TABLES
    keys = crossing.get("tables", {})
    store_inputs = (keys["interactions"]["key"], keys["catalogue"]["key"]) if {"interactions", "catalogue"} <= set(
        keys) else None
    computed = compute_tables(settings, need(interactions_path, "snapshots", "interactions", "the receive step's "
                                             "pseudonymised interactions"),
                              need(catalogue_path, "snapshots", "catalogue", "the receive step's catalogue"),
                              times, tables, run_id=run_id or crossing.get("batch", ""), store_inputs=store_inputs)
    excluded = opted_out(open_for(settings)) | erased(open_for(settings))  # no personal rows for them
    user_rows = feast_store.write_offline_sources(
        settings, snapshot_parts(tables, "user_stats", times, excluded),
        snapshot_parts(tables, "item_stats", times), users_file=out / SNAPSHOT_FILES["user_stats"],
        items_file=out / SNAPSHOT_FILES["item_stats"])
    return {"user_rows": user_rows, "item_rows": computed.get("item_stats", 0),
            "excluded_users": len(excluded), "engine": settings.feature_engine,
            "snapshots": [str(t.date()) for t in times]}


def neighbours(crossing_path: Path, snapshots_dir: Path, settings: Settings | None = None,
               catalogue_path: Path | None = None) -> dict:
    """The aggregates the API serves beside the model: the popular list as of the newest snapshot
    (the cold-start answer), each item's "bought together" neighbours (session candidates and
    `/bought-together`), both from the features step's artifact; with the catalogue, the catalogue
    itself (what the API describes items by) and each item's similar items (`/similar`,
    out-of-stock substitutes)."""
    settings = settings or load_settings()
    at = crossing_times(read_crossing_artifact(crossing_path, "neighbours"))[-1]
    item_stats = read_item_snapshots(snapshots_dir, "neighbours")
    popular = pd.DataFrame({"item_id": popular_at(item_stats, at, 200)})
    popular["rank"] = np.arange(len(popular))
    store = open_for(settings)
    write_parquet(store, POPULAR_KEY, _table(popular))
    pairs = read_snapshot(Path(snapshots_dir) / ENGINE_TABLES, "item_neighbours", at).select(["item_id", "neighbours"])
    write_parquet(store, ITEM_NEIGHBOURS_KEY, pairs)
    out = {"popular": len(popular), "neighbour_pairs": pairs.num_rows}
    if catalogue_path is not None:
        items = read_catalogue(catalogue_path, "neighbours")
        bought = dict(zip(pairs.column("item_id").to_pylist(), pairs.column("neighbours").to_pylist(), strict=True))
        similar = similar_items(items, bought)
        write_parquet(store, SIMILAR_ITEMS_KEY, pa.Table.from_pandas(similar, preserve_index=False))
        write_parquet(store, CATALOGUE_KEY, pa.Table.from_pandas(items[list(ITEMS.names)], schema=ITEMS,
                                                                 preserve_index=False))
        out |= {"catalogue_items": len(items), "similar_lists": int((similar["similar"].map(len) > 0).sum())}
    return out


def materialise(crossing_path: Path, settings: Settings | None = None) -> dict:
    """Feast apply and materialise up to the newest snapshot, after recording which key made the
    rows: the API re-reads the record once it sees the new materialisation, and serves with the key
    of that id (a key rotation switches the API with the store)."""
    settings = settings or load_settings()
    crossing = read_crossing_artifact(crossing_path, "materialise")
    at = crossing_times(crossing)[-1]
    open_for(settings).put_bytes(KEY_RECORD, json.dumps({"key_id": crossing["key_id"], "snapshot": str(at)}).encode())
    fs = feast_store.apply_and_materialise(settings, at)
    return {"materialised_to": str(at), "feature_views": feature_view_versions(fs)}


PUBLIC_TABLES = ("interactions", "impressions", "queries", "catalogue")


def features_from_crossing(crossing_key: str, work: Path, settings: Settings | None = None) -> dict[str, Path]:
    """The pipeline's first four steps (receive, snapshots, neighbours, materialise) in this process,
    their artifacts under `work`: for benches and tests that run the steps one by one. Returns the
    artifacts' paths by name (`crossing`, `snapshots` and each table)."""
    work = Path(work)
    paths = {"crossing": work / "crossing.json", "snapshots": work / "snapshots",
             **{name: work / f"{name}.parquet" for name in PUBLIC_TABLES}}
    receive(crossing_key, paths["crossing"], {name: paths[name] for name in PUBLIC_TABLES}, settings)
    snapshots(paths["crossing"], paths["interactions"], paths["catalogue"], paths["snapshots"], settings)
    neighbours(paths["crossing"], paths["snapshots"], settings, paths["catalogue"])
    materialise(paths["crossing"], settings)
    return paths


def feature_view_versions(fs) -> dict[str, dict[str, str]]:
    """What identifies each feature view's data for lineage: its schema and how far it is materialised."""
    import hashlib

    out = {}
    for view in fs.list_feature_views():
        schema = ",".join(sorted(f"{f.name}:{f.dtype}" for f in view.features))
        end = view.materialization_intervals[-1][1] if view.materialization_intervals else None
        out[view.name] = {"schema_sha256": hashlib.sha256(schema.encode()).hexdigest()[:16],
                          "materialised_to": str(end), "updated": str(view.last_updated_timestamp)}
    return out


def _table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


class MissingInput(FileNotFoundError):
    """A step was not handed an artifact it reads: a wiring mistake, named, never papered over."""


def need(path: Path | str | None, step: str, name: str, what: str) -> Path:
    """The input artifact's path; MissingInput naming the step, the input and what makes it."""
    if path is None or not Path(path).exists():
        where = "none was given" if path is None else f"nothing at {path}"
        raise MissingInput(f"{step}: input `{name}` ({what}) is missing: {where}")
    return Path(path)


def read_interactions(path: Path | None, step: str, since: pd.Timestamp | None = None,
                      purchases_only: bool = False) -> pd.DataFrame:
    """The pseudonymised interactions the receive step handed on (its `interactions` artifact): those
    from `since` on, or the purchases only, where a step needs no more (parquet's row-group statistics
    skip the rest unread, so the step holds the part it uses, not the whole lookback)."""
    filters = []
    if since is not None:
        filters.append(("event_time", ">=", since))
    if purchases_only:
        filters.append(("event_type", "==", "purchase"))
    return pd.read_parquet(need(path, step, "interactions", "the receive step's pseudonymised interactions"),
                           filters=filters or None)


def read_catalogue(path: Path | None, step: str) -> pd.DataFrame:
    """The catalogue the receive step handed on (its `catalogue` artifact)."""
    return pd.read_parquet(need(path, step, "catalogue", "the receive step's catalogue"))


def read_snapshots(snapshots_dir: Path | None, step: str, user_columns: list[str] | None = None,
                   times: list[pd.Timestamp] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The user and item snapshots the snapshots step wrote (its `snapshots` artifact); of the user
    rows only `user_columns` (None: all) at `times` (None: every snapshot)."""
    return read_user_snapshots(snapshots_dir, step, user_columns, times), read_item_snapshots(snapshots_dir, step)


def read_user_snapshots(snapshots_dir: Path | None, step: str, columns: list[str] | None = None,
                        times: list[pd.Timestamp] | None = None, users: list[str] | None = None) -> pd.DataFrame:
    """The user rows alone: `columns` (None: all; the key and time always) at `times`, of `users`
    (None: every user)."""
    folder = need(snapshots_dir, step, "snapshots", "the snapshots step's user and item snapshots")
    columns = None if columns is None else ["user_key", "event_timestamp", *columns]
    filters = [] if times is None else [("event_timestamp", "in", list(times))]
    filters += [] if users is None else [("user_key", "in", pa.array(list(users), pa.string()))]  # typed: [] too
    return pd.read_parquet(folder / SNAPSHOT_FILES["user_stats"], columns=columns, filters=filters or None)


def read_item_snapshots(snapshots_dir: Path | None, step: str) -> pd.DataFrame:
    """The item snapshots alone (the steps that need no user row)."""
    folder = need(snapshots_dir, step, "snapshots", "the snapshots step's user and item snapshots")
    return pd.read_parquet(folder / SNAPSHOT_FILES["item_stats"])


def training_set(crossing_path: Path, out_dir: Path, config: TrainingSetConfig, settings: Settings | None = None,
                 interactions_path: Path | None = None, snapshots_dir: Path | None = None,
                 impressions_path: Path | None = None, feedback: bool = True,
                 lists_per_part: int = LISTS_PER_PART) -> dict:
    """Label examples from future purchases, join features point-in-time through Feast.

    Labels and candidates come from the earlier steps' artifacts (`interactions_path`,
    `snapshots_dir`, the crossing's snapshot times: all required), the features themselves from
    Feast's point-in-time join over the same snapshots. `feedback`: use the logged impressions
    (`impressions_path`: positions, shown-but-not-taken rows, served lists as request-time rows);
    off, the set is what it was before the loop existed (the loop bench's ablation). The set is built
    and written `lists_per_part` candidate lists at a time (`features.example_parts`)."""
    settings = settings or load_settings()
    crossing = read_crossing_artifact(crossing_path, "training_set")
    at_end = Interval.parse(*crossing["interval"]).end
    # every input named before any is read: a missing artifact is the error, not what follows from it
    need(interactions_path, "training_set", "interactions", "the receive step's pseudonymised interactions")
    need(snapshots_dir, "training_set", "snapshots", "the snapshots step's user and item snapshots")
    cutoffs = label_cutoffs(crossing_times(crossing), config.label_days, at_end)
    if len(cutoffs) < 3:
        raise ValueError(f"need >= 3 label cut-offs (train/validation/test) inside the data, got {len(cutoffs)}: "
                         f"raise n_snapshots or widen the interval")
    shown = None
    if feedback:
        shown = ranker_impressions(pd.read_parquet(need(impressions_path, "training_set", "impressions",
                                                        "the receive step's pseudonymised impressions")))
    # Labels, served lists and sessions look at [first cut-off or first served list - a session, end):
    # the lookback before it is in the features already, and is never read here.
    first = min([cutoffs[0], *([shown["event_time"].min()] if shown is not None and len(shown) else [])])
    interactions = read_interactions(interactions_path, "training_set", since=first - SESSION_WINDOW)
    # the users drawn first from the snapshot keys, then only their candidate lists read: the step's
    # memory is max_users_per_cutoff users' lists, not every user's
    keys = read_user_snapshots(snapshots_dir, "training_set", [], times=cutoffs)
    known = {at: set(keys.loc[keys["event_timestamp"] == at, "user_key"]) for at in cutoffs}
    del keys
    sampled = sample_users(interactions, known, cutoffs, config)
    item_stats = read_item_snapshots(snapshots_dir, "training_set")
    categories = item_categories(item_stats)
    parts = user_parts(sampled, lists_per_part)
    counts: dict[str, list[int]] = {}
    shown_rows = 0
    with replacing_dir(Path(out_dir)) as tmp, PartWriter(tmp / "examples.parquet") as writer:
        # one part of the users at a time: the step holds one part's rows, however many users are drawn
        for j, part in enumerate(tqdm(parts, desc="training set", unit="part", disable=len(parts) < 2)):
            user_stats = read_user_snapshots(snapshots_dir, "training_set", list(CANDIDATE_LISTS), times=cutoffs,
                                             users=sorted(set().union(*map(set, part.values()))))
            examples = build_examples(interactions, user_stats, item_stats, cutoffs, config, sampled=part)
            examples = add_shown(examples, shown, interactions, config.label_days)
            if j == 0:  # the served lists, of whichever shoppers were shown them, once
                # the lists from the validation cut-off on are never trained on: evaluate scores them
                examples = add_requests(examples, shown, interactions, config.label_days, train_until=cutoffs[-2],
                                        held_out=(cutoffs[-2], at_end))
            joined = feast_store.historical_features(settings, examples[["user_key", "item_id", "event_timestamp"]])
            dataset = add_session_inputs(with_features(examples, joined, config.label_days), interactions, categories)
            writer.write(dataset.drop(columns=USER_LIST_FEATURES, errors="ignore"))
            for split, labels in dataset.groupby("split")["label"]:
                size, positives = counts.get(split, [0, 0])
                counts[split] = [size + len(labels), positives + int(labels.sum())]
            shown_rows += int((dataset["shown_position"] > 0).sum())
            del user_stats, examples, joined, dataset
        truth = truth_sets(interactions, cutoffs[-1], config.label_days)
        (tmp / "truth.json").write_text(json.dumps({u: sorted(v) for u, v in truth.items()}))
        (tmp / "meta.json").write_text(json.dumps({"cutoffs": [str(c) for c in cutoffs],
                                                   "training_set": asdict(config),
                                                   "test_cutoff": str(cutoffs[-1]),
                                                   "n_catalogue": int(item_stats["item_id"].nunique()),
                                                   "parts": len(parts)}))
    return {f"{split}_rows": size for split, (size, _) in counts.items()} | {
        f"{split}_positive_rate": positives / size for split, (size, positives) in counts.items() if size} | {
        "shown_rows": shown_rows, "parts": len(parts)}


def train(dataset_dir: Path, model_dir: Path, report_dir: Path, config=None, search_trials: int = 0,
          settings: Settings | None = None, backup_key: str = "") -> dict:
    """Train the ranker on the train cut-offs, early-stopped on the validation cut-off.

    `search_trials` > 0 first runs a random hyperparameter search (`models.tuning`) judged on the
    validation rows only, then trains the winner; the trials go into the model card. `backup_key`
    (the run's, see `training_backup_key`) backs the final training up under the model base path, so
    the step run again after a kill (a spot node gone) resumes at its last backup.
    """
    from shoprank.layout import training_backup_prefix
    from shoprank.models.card import ModelCard
    from shoprank.models.export import export_saved_model
    from shoprank.models.train import Backup, TrainConfig, plot_curves, train_ranker
    from shoprank.models.tuning import random_search

    started = time.perf_counter()
    settings = settings or load_settings()
    config = config or TrainConfig()
    examples = need(dataset_dir, "train", "dataset", "the training set step's examples") / "examples.parquet"
    meta = json.loads((Path(dataset_dir) / "meta.json").read_text())
    report_dir = Path(report_dir)
    # the training rows stream from the file part by part (the search's trials read them whole); the
    # validation rows (one cut-off) are read whole
    fit_rows: pd.DataFrame | ExampleParts = pd.read_parquet(examples, filters=[("split", "==", "train")]) \
        if search_trials > 0 else ExampleParts(examples, "train")
    val_rows = pd.read_parquet(examples, filters=[("split", "==", "validation")])
    trials: list[dict] = []
    if search_trials > 0:
        search = random_search(fit_rows, val_rows, config, n_trials=search_trials, seed=config.seed)
        config, trials = search.best, search.trials
        print(f"hyperparameter search: {len(trials)} trials, best {config.monitor} {search.best_score:.4f} "
              f"with {vars(config)}")
    backup = Backup(report_dir / "backup", open_for(settings, "models"),
                    training_backup_prefix(backup_key)) if backup_key else None
    result = train_ranker(fit_rows, val_rows, config, log_dir=report_dir / "tensorboard", backup=backup)
    plot_curves(result.history, report_dir / "training_curves.png")
    wall_hours = (time.perf_counter() - started) / 3600
    # the candidate and label settings travel with the model: the online path builds candidates
    # and the calendar horizon from the served version's card, not from its own defaults
    card = ModelCard(model=MODEL_NAME, data_cutoffs=meta["cutoffs"], parameters=vars(config),
                     training_set=meta.get("training_set"), history=result.history, device=result.device,
                     precision=result.precision, examples_per_second=result.examples_per_second,
                     train_seconds=result.train_seconds, accelerator_hours=wall_hours * result.accelerators,
                     estimated_cost_usd=wall_hours * result.accelerators * settings.gpu_hour_usd,
                     resumed_from=result.resumed_from, search_trials=trials,
                     ensemble_members=result.extra.get("members", []), shown_rows=result.extra.get("shown_rows", 0),
                     position_bias=result.extra.get("position_bias"))
    export_saved_model(result.model, Path(model_dir), card)
    return {"epochs": len(result.history["loss"]), "val_auc": max(result.history.get("val_auc", [float("nan")])),
            "val_ndcg": max(result.history.get("val_ndcg", [float("nan")])),
            "examples_per_second": result.examples_per_second, "train_seconds": result.train_seconds,
            "device": result.device, "precision": result.precision, "shown_rows": result.extra.get("shown_rows", 0),
            "accelerator_hours": card.accelerator_hours, "estimated_cost_usd": card.estimated_cost_usd,
            "resumed_from_epoch": result.resumed_from["epoch"] if result.resumed_from else -1}


def training_backup_key(dataset_uri: str, config) -> str:
    """One key per training run: the same dataset artifact and configuration (a rerun of the step in
    the same pipeline run) find the same backup; another night or configuration never does."""
    import hashlib

    digest = hashlib.sha256(f"{dataset_uri}|{json.dumps(asdict(config), sort_keys=True)}".encode())
    return digest.hexdigest()[:24]


def production_model_dir(settings: Settings, name: str = MODEL_NAME) -> tuple[str, int] | None:
    """Local path and version of the current `stable` version of a model, if any was pushed before."""
    from shoprank.serving.model_server.repository import ModelRepository
    from shoprank.serving.model_server.versions import model_versions, read_labels

    repo = ModelRepository(settings.models, settings.s3_endpoint_url or None)
    versions = model_versions(repo.store, name)
    if not versions:
        return None
    version = read_labels(repo.store, name).get(SERVED_LABEL, versions[-1])
    return repo._local_dir(name, version), version


def evaluate(model_dir: Path, dataset_dir: Path, rules: BlessingRules | None = None,
             settings: Settings | None = None, k: int = 20, interactions_path: Path | None = None) -> Evaluation:
    """Score the held-out cut-off; compare with the baselines and production; decide the blessing.

    The baselines are those of the quality benchmark (`evaluation.baselines`), fitted on the
    purchases before the test cut-off and scored with the same metric code on the same users.
    """
    from shoprank.evaluation.baselines import baselines_at
    from shoprank.evaluation.metrics import evaluate_rankings

    settings = settings or load_settings()
    rules = rules or load_rules()
    data = pd.read_parquet(need(dataset_dir, "evaluate", "dataset", "the training set step's examples")
                           / "examples.parquet", filters=[("split", "in", ["test", SERVED_TEST])])
    test = data[data["split"] == "test"].reset_index(drop=True)
    meta = json.loads((Path(dataset_dir) / "meta.json").read_text())
    test_users = set(test["user_key"])
    truth = {u: items for u, items in json.loads((Path(dataset_dir) / "truth.json").read_text()).items()
             if u in test_users}
    n_items = meta["n_catalogue"]
    interactions = read_interactions(interactions_path, "evaluate", purchases_only=True)
    baselines = baselines_at(interactions, pd.Timestamp(meta["test_cutoff"]), truth, ks=(10, 20), n_items=n_items)

    def score(model: str) -> dict[str, float]:
        scores = score_examples(model, test)
        result = evaluate_rankings(rank_by_score(test, scores, k), truth, ks=(10, 20), n_items=n_items)
        return {**result, "auc": auc(test["label"].to_numpy(), scores)}

    production = production_model_dir(settings)
    evaluation = judge(MODEL_NAME, score, model_dir, baselines, rules, production, facts={"test_users": len(truth)})
    served = data[data["split"] == SERVED_TEST].reset_index(drop=True)
    if len(served):
        scored = {"candidate": (str(model_dir), score_examples(str(model_dir), served))}
        if production is not None and evaluation.production_outcome == "scored":
            scored["production"] = (production[0], score_examples(production[0], served))
        evaluation.extra["served_lists"] = {"lists": int(served.groupby(["user_key", "event_timestamp"]).ngroups),
                                            **{name: served_list_metrics(served, scores)
                                               for name, (_, scores) in scored.items()}}
        evaluation.extra["off_policy"] = served_report(served, scored)  # reported, not judged
    return evaluation


def record_run_verdict(run_key: str, evaluation: Evaluation, settings: Settings | None = None) -> dict:
    """Record `evaluate`'s verdict under the orchestrator's run id (see orchestration.verdicts)."""
    from shoprank.orchestration.verdicts import record_verdict

    settings = settings or load_settings()
    return record_verdict(open_for(settings), run_key, evaluation.as_dict())


def infra_validate(model_dir: Path, dataset_dir: Path, out_dir: Path, n_requests: int = 64) -> dict:
    """Copy the candidate, prove it serves over REST and gRPC, add warm-up requests to the copy."""
    from shoprank.features.derived import model_inputs
    from shoprank.serving.registry.infra_validate import infra_validate as check

    data = pd.read_parquet(Path(dataset_dir) / "examples.parquet", filters=[("split", "==", "test")])
    sample = data.head(n_requests)
    import tensorflow as tf  # deferred: the other steps' processes need not load TensorFlow

    _, specs = tf.saved_model.load(str(model_dir)).signatures["serving_default"].structured_input_signature
    inputs = model_inputs(sample)
    with replacing_dir(Path(out_dir)) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        latencies = check(tmp, MODEL_NAME, {k: inputs[k] for k in specs})
    return latencies


def push(model_dir: Path, lineage: dict, label: str = SERVED_LABEL, keep: int = 5,
         settings: Settings | None = None, load_timeout_s: float = 600.0, name: str = MODEL_NAME) -> dict:
    """New version, then the label once the model server has loaded it (TF Serving's two-step move).

    Where no model server answers (the local profile between demo runs), the label moves at once:
    a server that starts later loads the version before it serves the label."""
    from shoprank.serving.registry.push import push_model, server_waiter
    settings = settings or load_settings()
    store = open_for(settings, "models")
    wait = server_waiter(settings.model_server_url, name, timeout_s=load_timeout_s)
    version = push_model(store, Path(model_dir), name, lineage, label=label, keep=keep, wait_loaded=wait)
    pushed = {"model": name, "version": version, "uri": store.uri(f"{name}/{version}"), "label": label}
    if label == "canary":  # the canary gets traffic through an experiment, decided by what shoppers do
        from shoprank.orchestration.experiments import start_canary_experiment

        pushed["experiment"] = start_canary_experiment(settings, name, version)
    return pushed


# ---- search ------------------------------------------------------------------------------------
def build_index(out_dir: Path, snapshots_dir: Path | None = None, settings: Settings | None = None,
                publish: bool = True, lineage: dict | None = None, catalogue_path: Path | None = None) -> dict:
    """Index the whole catalogue (an item with no interactions is findable by its text), with each
    item's 30-day purchases as of the newest snapshot for the popularity tie-break; publish it as
    the next index version beside the model versions."""
    from shoprank.search.index import SearchIndex, publish_index

    settings = settings or load_settings()
    items = read_catalogue(catalogue_path, "index")
    item_stats = read_item_snapshots(snapshots_dir, "index")
    newest = item_stats[item_stats["event_timestamp"] == item_stats["event_timestamp"].max()]
    popularity = dict(zip(newest["item_id"].astype(str), newest["item_pop_30d"].fillna(0).astype(float), strict=True))
    index = SearchIndex.build(items, popularity)
    index.save(Path(out_dir))
    result = {"items": len(index), "vocabulary": index.manifest["vocabulary"],
              "snapshot": str(newest["event_timestamp"].max())}
    if publish:
        store = open_for(settings, "models")
        result["version"] = publish_index(store, Path(out_dir), {**(lineage or {}), **result})
    return result


def search_training_queries(interactions: pd.DataFrame, queries: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The real search log where the source has one, else pseudo-queries from the purchases."""
    from shoprank.search.queries import pseudo_queries

    if len(queries):
        return queries
    return pseudo_queries(interactions, items)


def train_search(index_dir: Path, model_dir: Path, out_dir: Path, settings: Settings | None = None,
                 interactions_path: Path | None = None, queries_path: Path | None = None,
                 snapshots_dir: Path | None = None, seed: int = 0, epochs: int = 8,
                 rules: BlessingRules | None = None, catalogue_path: Path | None = None) -> Evaluation:
    """Train the search ranker on the queries before the last week, judge it on the last week's
    queries against the baselines (own-frequency among them) and the production search ranker, write
    the SavedModel and the evaluation (search rules: `evaluation/search_blessing.toml`).

    Whatever the verdict, it decides what the API serves known shoppers tonight and publishes that
    beside the models (`SearchServing`): the ranker when one is blessed or production still beats
    every rule, else the best rule the night measured."""
    from shoprank.evaluation.blessing import SEARCH_RULES, Verdict
    from shoprank.models.card import ModelCard
    from shoprank.models.export import export_saved_model
    from shoprank.models.train import TrainConfig
    from shoprank.search import SEARCH_MODEL_NAME
    from shoprank.search.features import SEARCH_FEATURES
    from shoprank.search.index import SearchIndex
    from shoprank.search.training import (
        NotEnoughQueries,
        SearchConfig,
        model_rankings,
        score_frame,
        train_and_judge,
    )
    from shoprank.search.training import judge as search_metrics

    settings = settings or load_settings()
    rules = rules or load_rules(SEARCH_RULES)
    index = SearchIndex.load(need(index_dir, "search_ranker", "search_index", "the index step's search index"))
    interactions = read_interactions(interactions_path, "search_ranker")
    logged = pd.read_parquet(need(queries_path, "search_ranker", "queries", "the receive step's scrubbed search log"))
    user_stats, item_stats = read_snapshots(snapshots_dir, "search_ranker")
    snapshots = sorted(pd.Timestamp(t) for t in item_stats["event_timestamp"].unique())
    if len(snapshots) < 3:
        raise ValueError(f"search training needs >= 3 feature snapshots (train, test), got {len(snapshots)}")
    queries = search_training_queries(interactions, logged, read_catalogue(catalogue_path, "search_ranker"))
    config = SearchConfig(seed=seed)
    try:
        run = train_and_judge(queries, index, user_stats, item_stats, snapshots, snapshots[-2], config,
                              TrainConfig(epochs=epochs, seed=seed))
    except NotEnoughQueries as err:  # e.g. a week of served events without searches: keep what is served
        print(f"search ranker: not trained tonight: {err}", flush=True)
        evaluation = Evaluation(SEARCH_MODEL_NAME, {}, {}, rules, Verdict(False, [f"SKIP {err}"]))
        _write_evaluation(evaluation, out_dir)
        return evaluation
    card = ModelCard(model=SEARCH_MODEL_NAME, inputs={"numeric": list(SEARCH_FEATURES[0]),
                                                      "string": list(SEARCH_FEATURES[1])},
                     history=run.history, device=run.device, facts=run.facts, search_config=vars(config),
                     notes={"query_source": "search log" if len(logged)
                            else "pseudo-queries (category of each purchase)",
                            "index": index.manifest, "score": "logit (a ranking score, not a probability)"})
    export_saved_model(run.model, Path(model_dir), card)
    baselines = {name.removeprefix("baseline/"): m for name, m in run.table.items() if name.startswith("baseline/")}

    def score(model: str) -> dict[str, float]:
        return search_metrics(model_rankings(run.test_frame, score_frame(model, run.test_frame)), run.truth, len(index))

    evaluation = judge(SEARCH_MODEL_NAME, score, model_dir, baselines, rules,
                       production_model_dir(settings, SEARCH_MODEL_NAME), facts=run.facts)
    if evaluation.blessed:  # as infra-validate does for the ranker: it serves, and it loads warm
        from shoprank.search.training import search_inputs
        from shoprank.serving.registry.infra_validate import infra_validate as check

        evaluation.extra["infra_validation"] = check(Path(model_dir), SEARCH_MODEL_NAME,
                                                     search_inputs(run.test_frame.head(64)))
    serving = search_serving(evaluation)
    evaluation.extra["serving"] = serving.as_dict()
    open_for(settings, "models").put_bytes(SEARCH_SERVING_KEY, json.dumps(serving.as_dict(), indent=2).encode())
    print(f"search: serving {serving.serve} to known shoppers: {serving.why}", flush=True)
    _write_evaluation(evaluation, out_dir)
    return evaluation


def search_serving(evaluation: Evaluation) -> SearchServing:
    """What known shoppers get tonight: a blessed candidate, else a production ranker that still beats
    every rule it must, else the best rule measured on the same queries."""
    from shoprank.search.rules import SERVABLE_RULES

    metric = evaluation.rules.metric
    if evaluation.blessed:
        return SearchServing("ranker", "tonight's search ranker is blessed", metric, evaluation.candidate.get(metric))
    production = evaluation.production
    must_beat = [b for b in evaluation.rules.must_beat if b in evaluation.baselines]
    if production is not None and all(production[metric] >= evaluation.baselines[b][metric] for b in must_beat):
        return SearchServing("ranker", f"production v{evaluation.production_version} still beats "
                                       f"{', '.join(must_beat)} on {metric}", metric, production[metric])
    measured = {name: m[metric] for name, m in evaluation.baselines.items() if name in SERVABLE_RULES}
    if not measured:
        return SearchServing("ranker", "no rule was measured tonight: what is served stays")
    best = max(measured, key=lambda name: measured[name])
    return SearchServing(SERVABLE_RULES[best], f"no search ranker beat {best} tonight ({metric} {measured[best]:.4f})",
                         metric, measured[best])


def _write_evaluation(evaluation: Evaluation, out_dir: Path) -> None:
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    Path(out_dir).write_text(json.dumps(evaluation.as_dict(), indent=2, default=str))
