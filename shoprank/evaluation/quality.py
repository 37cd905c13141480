"""The quality benchmark: every baseline and model on both protocols, the same metrics for all.

`model/served` is what the online path serves: candidates (the user's own items, the items bought
together with their history, those of similar shoppers, the sequence model's next items, popular
items), scored by the ranker, top K. `model/sequence` is the sequence model alone, trained on the
split's training events (so point-in-time for the test), once per protocol with the first seed.
Its features are computed by the pipeline's own functions (`compute.user_snapshot` /
`item_snapshot`, the rows Feast materialises, then `derived.add_model_features` (cross and calendar features) and
`model_inputs`), as of each cut-off from the events strictly before it: point-in-time, exactly
what the Feast point-in-time join returns for a cut-off that is a snapshot time.

Temporal protocol (Ta Feng, T = 2001-02-01, test = February): the ranker trains on weekly
cut-offs in December/January with 28-day label windows (the test period's length) that end by T;
a held-out fifth of the users at the last training cut-off (2001-01-04, labels = the January
validation period) is the early-stopping set and never trains. Leave-last-out: features as of the
end of the (per-user truncated) train frame, candidates minus the user's history, a ranker
trained on *new* items only (what that protocol asks for), cut-offs inside the train frame.
"""

from __future__ import annotations

# features.* and models.* (TensorFlow) are imported inside the functions that train: the baselines'
# harness and `--help` run without them.
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.data.sources import open_source
from shoprank.evaluation.baselines import PopularityRecommender, default_baselines, evaluate_recommender
from shoprank.evaluation.metrics import evaluate_rankings
from shoprank.evaluation.protocols import Split, make_split

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10", "hr@20")
KS = (10, 20)


@dataclass
class ServedConfig:
    label_days: int = 28
    train_cutoffs: tuple[str, ...] = ("2000-12-07", "2000-12-14", "2000-12-21", "2000-12-28", "2001-01-04")
    max_users_per_cutoff: int = 4000
    validation_share: float = 0.2
    n_popular: int = 30
    max_user_items: int = 100
    n_cooc: int = 50
    n_knn: int = 50
    n_sequence: int = 30  # the sequence model's top items added as candidates
    use_sequence: bool = True
    new_items_only: bool = False
    epochs: int = 8
    batch_size: int = 4096
    loss: str = "listwise"  # the ranker's TrainConfig.loss: softmax over each user's list (+0.1 BCE)
    monitor: str = "val_ndcg"  # early stopping: NDCG@10 inside the validation lists
    ensemble: int = 3  # rankers from different seeds, scores averaged (models/ensemble.py)
    extra: dict = field(default_factory=dict)


def interactions_of(events: pd.DataFrame) -> pd.DataFrame:
    """Canonical events as the feature code's (pseudonymised) interactions: user_key instead of user_id."""
    cols = ["user_id", "item_id", "event_type", "event_time", "price", "quantity"]
    frame = events.loc[events["item_id"].notna(), [c for c in cols if c in events]].rename(
        columns={"user_id": "user_key"})
    for c, default in (("price", np.nan), ("quantity", 1)):
        if c not in frame:
            frame[c] = default
    return frame.reset_index(drop=True)


def _held_out(user: str, share: float) -> bool:
    return (zlib.crc32(str(user).encode()) % 1000) < share * 1000


def _rank_frame(frame: pd.DataFrame, scores: np.ndarray, k: int, popular: list[str],
                exclude: Mapping[str, set] | None) -> dict[str, list[str]]:
    ranked = pd.DataFrame({"u": frame["user_key"].to_numpy(), "i": frame["item_id"].to_numpy(), "s": scores})
    ranked = ranked.sort_values(["u", "s", "i"], ascending=[True, False, True], kind="mergesort")
    out: dict[str, list[str]] = {}
    for user, items in ranked.groupby("u", sort=False)["i"]:
        lst = items.head(k + (len(exclude.get(user, ())) if exclude else 0)).tolist()
        if exclude:
            ban = exclude.get(user, set())
            lst = [i for i in lst if i not in ban]
        out[str(user)] = lst[:k]
    for user, lst in out.items():
        if len(lst) < k:
            ban = exclude.get(user, set()) if exclude else set()
            seen = set(lst)
            lst.extend([i for i in popular if i not in seen and i not in ban][: k - len(lst)])
    return out


class ServedPipeline:
    """Snapshots, candidates, features and ranker for one protocol split."""

    def __init__(self, split: Split, items: pd.DataFrame, config: ServedConfig, log=print) -> None:
        self.split, self.items, self.config, self.log = split, items, config, log
        self.inter = interactions_of(split.train)
        if split.cutoff is not None:
            self.test_at = split.cutoff
        else:  # leave-last-out: everything in the (truncated) train frame is history
            self.test_at = self.inter["event_time"].max().floor("D") + pd.Timedelta(days=1)
        tz = self.test_at.tz
        self.train_at = [pd.Timestamp(t).tz_localize(tz) if pd.Timestamp(t).tzinfo is None else pd.Timestamp(t)
                         for t in config.train_cutoffs]
        self.timings: dict[str, float] = {}

    # ---- data -------------------------------------------------------------------------------
    def prepare(self) -> None:
        from shoprank.features.engine.frames import feature_snapshots
        from shoprank.features.training_set import TrainingSetConfig, build_examples

        cfg = self.config
        t0 = time.perf_counter()
        times = [*self.train_at, self.test_at]
        self.user_stats, self.item_stats = feature_snapshots(self.inter, self.items, times, memory_limit="6GB")
        self.timings["snapshots_s"] = time.perf_counter() - t0
        self.log(f"  snapshots {len(times)} in {self.timings['snapshots_s']:.1f}s")
        t0 = time.perf_counter()
        ts_config = TrainingSetConfig(label_days=cfg.label_days, n_popular=cfg.n_popular,
                                      max_user_items=0 if cfg.new_items_only else cfg.max_user_items,
                                      max_users_per_cutoff=10**9, seed=0, n_cooc=cfg.n_cooc,
                                      n_knn=cfg.n_knn)
        self.ts_config = ts_config
        last = self.train_at[-1]
        users_at = {}
        buys = self.inter[self.inter["event_type"] == "purchase"]
        rng = np.random.default_rng(0)
        for at in self.train_at:
            window = buys[(buys["event_time"] >= at) & (buys["event_time"] < at + pd.Timedelta(days=cfg.label_days))]
            users = sorted(set(window["user_key"]))
            if at == last:
                users = [u for u in users if _held_out(u, cfg.validation_share)]
            else:
                users = [u for u in users if not _held_out(u, cfg.validation_share)]
            if len(users) > cfg.max_users_per_cutoff:
                users = sorted(rng.choice(users, cfg.max_users_per_cutoff, replace=False).tolist())
            users_at[at] = users
        splits = ["train"] * (len(self.train_at) - 1) + ["validation"]
        # the last training cut-off also trains on the users who are not held out
        examples = build_examples(self.inter, self.user_stats, self.item_stats, self.train_at, ts_config,
                                  splits=splits, users_at=users_at)
        more_users = [u for u in sorted(set(buys[(buys["event_time"] >= last) & (buys["event_time"] < last +
                      pd.Timedelta(days=cfg.label_days))]["user_key"])) if not _held_out(u, cfg.validation_share)]
        if len(more_users) > cfg.max_users_per_cutoff:
            more_users = sorted(rng.choice(more_users, cfg.max_users_per_cutoff, replace=False).tolist())
        extra = build_examples(self.inter, self.user_stats, self.item_stats, [last], ts_config,
                               splits=["train"], users_at={last: more_users})
        examples = pd.concat([examples, extra], ignore_index=True)
        if cfg.new_items_only:
            examples = self._drop_history(examples)
        self.examples = examples
        self.timings["examples_s"] = time.perf_counter() - t0
        self.log(f"  examples {len(examples):,} (positives {examples['label'].mean():.3%}) "
                 f"in {self.timings['examples_s']:.1f}s")

    def _drop_history(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Leave-last-out: candidates the user has bought before are neither candidates nor labels."""
        snap = self.user_stats[["user_key", "event_timestamp", "user_top_items"]].explode("user_top_items")
        snap = snap.rename(columns={"user_top_items": "item_id"}).dropna()
        snap["_seen"] = True
        merged = frame.merge(snap, on=["user_key", "event_timestamp", "item_id"], how="left")
        return merged[merged["_seen"].isna()].drop(columns="_seen").reset_index(drop=True)

    def features(self, examples: pd.DataFrame) -> pd.DataFrame:
        """What the Feast point-in-time join returns for these rows, plus the cross and calendar features."""
        from shoprank.features.derived import add_model_features

        frame = examples.merge(self.user_stats, on=["user_key", "event_timestamp"], how="left")
        frame = frame.merge(self.item_stats, on=["item_id", "event_timestamp"], how="left")
        return add_model_features(frame, self.config.label_days)

    def test_candidates(self, extra: Mapping[str, list[str]] | None) -> pd.DataFrame:
        from shoprank.features.training_set import CANDIDATE_LISTS, popular_at, user_candidates

        cfg = self.config
        snap = self.user_stats[self.user_stats["event_timestamp"] == self.test_at].set_index("user_key")
        lists = snap[list(CANDIDATE_LISTS)].to_dict("index")
        popular = popular_at(self.item_stats, self.test_at, cfg.n_popular)
        self.popular_full = popular_at(self.item_stats, self.test_at, 500)
        users, items = [], []
        exclude = self.split.exclude
        for user in self.split.test_users:
            more = list(extra.get(user, [])) if extra else []
            # ts_config: no own items on the leave-last-out protocol (max_user_items 0)
            cands = user_candidates(lists.get(user), popular, self.ts_config, more)
            if exclude:
                ban = exclude.get(user, set())
                cands = [c for c in cands if c not in ban]
            users.extend([user] * len(cands))
            items.extend(cands)
        return pd.DataFrame({"user_key": users, "item_id": items, "event_timestamp": self.test_at})


def candidate_recall(frame: pd.DataFrame, truth: Mapping[str, Sequence[str]]) -> float:
    cands = frame.groupby("user_key")["item_id"].agg(set).to_dict()
    return float(np.mean([len(set(t) & cands.get(u, set())) / len(t) for u, t in truth.items() if t]))


def mean_std(runs: list[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in METRICS:
        vals = np.array([r[m] for r in runs], dtype=float)
        out[m] = float(vals.mean())
        out[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def format_quality_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    lines = []
    for protocol, table in results.items():
        lines.append(f"\n## {protocol}")
        lines.append(f"| method | {' | '.join(METRICS)} |")
        lines.append("|---|" + "---|" * len(METRICS))
        for method, metrics in table.items():
            cells = [f"{metrics[m]:.4f} ± {metrics.get(m + '_std', 0.0):.4f}" for m in METRICS]
            lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines)


__all__ = ["ServedConfig", "ServedPipeline", "interactions_of", "mean_std", "format_quality_table",
           "evaluate_rankings", "evaluate_recommender", "default_baselines", "make_split", "PopularityRecommender",
           "json", "Path", "_rank_frame", "candidate_recall"]


PROTOCOL_CONFIGS = {
    "temporal": ServedConfig(),
    # leave-last-out targets are items new to the user: no own-item candidates, labels on new items
    "leave_last_out": ServedConfig(train_cutoffs=("2000-12-21", "2001-01-04", "2001-01-18", "2001-01-25"),
                                   new_items_only=True, max_users_per_cutoff=3000, n_popular=50),
}


def run_protocol(protocol: str, events: pd.DataFrame, items: pd.DataFrame, seeds: Sequence[int],
                 out_dir: Path | None = None, log=print) -> tuple[dict, dict]:
    """All baselines and models on one protocol: ({method: metrics}, extra facts for the report)."""
    from shoprank.features.derived import model_inputs
    from shoprank.models.sequence import SequenceConfig, SequenceRecommender
    from shoprank.models.train import TrainConfig, plot_curves, train_ranker

    t0 = time.perf_counter()
    split = make_split(protocol, events)
    log(f"## {protocol}: {split.describe()}  ({time.perf_counter() - t0:.1f}s)")
    table: dict[str, dict[str, float]] = {}
    facts: dict[str, object] = {"split": split.describe()}
    for model in default_baselines():
        res = evaluate_recommender(model, split, KS)
        table[f"baseline/{model.name}"] = mean_std([res["metrics"]])  # deterministic: std 0
        log(f"  baseline/{model.name}: recall@20 {res['metrics']['recall@20']:.4f} "
            f"ndcg@10 {res['metrics']['ndcg@10']:.4f} ({res['fit_s'] + res['recommend_s']:.1f}s)")
    cfg = PROTOCOL_CONFIGS[protocol]
    pipe = ServedPipeline(split, items, cfg, log)
    pipe.prepare()
    train_frame = pipe.features(pipe.examples)
    fit_rows, val_rows = train_frame[train_frame["split"] == "train"], train_frame[train_frame["split"] == "validation"]
    ts = time.perf_counter()
    sequence = SequenceRecommender(SequenceConfig(seed=seeds[0])).fit(split.train)
    wanted = max(cfg.n_sequence, max(KS))
    sequenced = sequence.recommend(list(split.test_users), wanted, split.exclude)
    runs: dict[str, list] = {"model/ranker_own_cooc": [], "model/served": []}
    table["model/sequence"] = mean_std([evaluate_rankings({u: v[:max(KS)] for u, v in sequenced.items()},
                                                          split.truth, KS, n_items=split.n_items)])
    log(f"  sequence: recall@20 {table['model/sequence']['recall@20']:.4f} (epochs "
        f"{len(sequence.history['loss'])}, {time.perf_counter() - ts:.0f}s)")
    throughput = {"ranker": [], "sequence": [sequence.examples_per_second]}
    for seed in seeds:
        tr = time.perf_counter()
        rank = train_ranker(fit_rows, val_rows, TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size,
                                                            learning_rate=3e-3, seed=seed, loss=cfg.loss,
                                                            monitor=cfg.monitor, ensemble=cfg.ensemble),
                            log_dir=(out_dir / f"tensorboard/{protocol}/ranker_{seed}") if out_dir else None,
                            verbose=0)
        throughput["ranker"].append(rank.examples_per_second)
        for name, extra in (("model/ranker_own_cooc", None),
                            ("model/served", {u: v[:cfg.n_sequence] for u, v in sequenced.items()})):
            cands = pipe.test_candidates(extra if cfg.use_sequence else None)
            feats = pipe.features(cands)
            scores = rank.model.predict(model_inputs(feats), batch_size=65536, verbose=0).reshape(-1)
            rankings = _rank_frame(feats, scores, max(KS), pipe.popular_full, split.exclude)
            runs[name].append(evaluate_rankings(rankings, split.truth, KS, n_items=split.n_items))
            if name == "model/served" and seed == seeds[0]:
                facts["served_candidate_recall"] = candidate_recall(cands, split.truth)
                facts["served_candidates_per_user"] = len(cands) / max(len(split.test_users), 1)
        log(f"  seed {seed}: served recall@20 "
            f"{runs['model/served'][-1]['recall@20']:.4f} ndcg@10 {runs['model/served'][-1]['ndcg@10']:.4f} "
            f"(ranker epochs {len(rank.history['loss'])}, val_auc {max(rank.history.get('val_auc', [0])):.4f}, "
            f"{time.perf_counter() - tr:.0f}s)")
        if out_dir is not None and seed == seeds[0]:
            plot_curves(rank.history, out_dir / f"quality_{protocol}_ranker_curves.png")
            plot_curves(sequence.history, out_dir / f"quality_{protocol}_sequence_curves.png")
            facts["ranker_history_seed0"] = rank.history
    for name, metrics in runs.items():
        table[name] = mean_std(metrics)
    facts["throughput_examples_per_s"] = {k: float(np.mean(v)) for k, v in throughput.items()}
    facts["ranker_train_rows"] = len(fit_rows)
    facts["sequence_model"] = {"epochs": len(sequence.history["loss"]), "fit_s": sequence.train_seconds,
                               "config": vars(sequence.config), "history": sequence.history}
    facts["timings"] = pipe.timings
    return table, facts


def run_benchmark(seeds: Sequence[int] = (0, 1, 2), protocols: Sequence[str] = ("temporal", "leave_last_out"),
                  out_dir: Path = Path("bench/results"), events: pd.DataFrame | None = None,
                  items: pd.DataFrame | None = None, log=print) -> dict:

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if events is None or items is None:
        source = open_source("tafeng")
        events = pd.concat(source.events(), ignore_index=True)
        items = source.items()
    results: dict[str, dict] = {}
    facts: dict[str, dict] = {}
    for protocol in protocols:
        results[protocol], facts[protocol] = run_protocol(protocol, events, items, seeds, out_dir, log)
        (out_dir / "quality.json").write_text(json.dumps(results, indent=2))
    wall = time.perf_counter() - started
    report = {"seeds": list(seeds), "wall_s": wall, "facts": facts}
    if "temporal" in results:
        best = max((m for m in results["temporal"] if m.startswith("baseline/")),
                   key=lambda m: results["temporal"][m]["recall@20"])
        served = results["temporal"].get("model/served", {})
        report["gain_vs_best_baseline"] = {
            "baseline": best,
            **{m: served.get(m, float("nan")) / results["temporal"][best][m] - 1 for m in ("recall@20", "ndcg@10")}}
    (out_dir / "quality.json").write_text(json.dumps(results, indent=2))
    (out_dir / "quality_run.json").write_text(json.dumps(report, indent=2, default=str))
    log(format_quality_table(results))
    log(f"\nwall time {wall / 60:.1f} min; {json.dumps(report.get('gain_vs_best_baseline', {}))}")
    return {"results": results, "report": report}


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Quality benchmark: baselines and models, both protocols.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--protocols", nargs="+", default=["temporal", "leave_last_out"])
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    run_benchmark(args.seeds, args.protocols, Path(args.out))
