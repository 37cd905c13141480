"""`make bench-learning-curve`: how much data the ranker and the sequence model need, on Ta Feng.

The nightly trains the ranker on at most `max_users_per_cutoff` sampled users per label cut-off; this
bench measures what a larger sample buys, so that the default is chosen from a curve, not guessed.

Everything is scored on the temporal protocol's *validation* period, never its test month:

- validation users: the held-out fifth of the users who buy in [2001-01-04, 2001-02-01) (the quality
  bench's early-stopping users, drawn by a hash of the user id); they never train either model;
- truth: the distinct items each of them buys in that period; history: everything before 2001-01-04.

Ranker: the quality bench's served pipeline (the same snapshots, candidates and features, weekly
cut-offs 2000-12-07 .. 2001-01-04, 28-day labels), built once for every user, then `n` users drawn
per cut-off for each size; one ranker (no seed ensemble) per size and seed, early-stopped on the
validation users' lists. Its R@20 / NDCG@10 rank the validation users' candidate lists, so the
candidates' recall bounds them, as it does online.

Sequence model: trained, with the nightly's settings, on the first-purchase sequences of `n` users drawn
among those who bought before 2001-01-04; it then reads each validation user's own history and ranks
the catalogue (the validation users' histories are not in its training data).

Writes bench/results/learning_curve.json and learning_curve.png. About 35 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from shoprank.data.sources import open_source
from shoprank.evaluation.metrics import evaluate_rankings
from shoprank.evaluation.protocols import make_split
from shoprank.evaluation.quality import ServedConfig, ServedPipeline, _held_out, _rank_frame

RESULTS = Path(__file__).with_name("results")
SIZES = (1000, 3000, 10000, None)  # users per cut-off (ranker) or in all (sequence model); None: every one
KS = (10, 20)
METRICS = ("recall@20", "ndcg@10")


def sample_lists(rows: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """Training rows of at most `n` users per cut-off (whole lists), drawn per cut-off with `seed`, as
    the nightly's training set draws them."""
    if n is None:
        return rows
    parts = []
    for at, group in rows.groupby("event_timestamp", sort=True):
        users = np.unique(group["user_key"].to_numpy())
        if len(users) > n:
            rng = np.random.default_rng([seed, int(pd.Timestamp(at).timestamp())])
            group = group[group["user_key"].isin(set(rng.choice(users, n, replace=False)))]
        parts.append(group)
    return pd.concat(parts, ignore_index=True)


def ranker_point(pipe: ServedPipeline, fit_rows: pd.DataFrame, val_rows: pd.DataFrame, truth: dict,
                 n: int | None, seed: int, n_items: int) -> dict:
    from shoprank.features.derived import model_inputs
    from shoprank.models.train import TrainConfig, train_ranker

    rows = sample_lists(fit_rows, n, seed)
    cfg = pipe.config
    started = time.perf_counter()
    result = train_ranker(rows, val_rows, TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed,
                                                      loss=cfg.loss, monitor=cfg.monitor, ensemble=1), verbose=0)
    wall = time.perf_counter() - started
    scores = result.model.predict(model_inputs(val_rows), batch_size=65536, verbose=0).reshape(-1)
    rankings = _rank_frame(val_rows, scores, max(KS), pipe.popular_full, None)
    metrics = evaluate_rankings(rankings, truth, KS, n_items=n_items)
    return {"users_per_cutoff": int(rows.groupby("event_timestamp")["user_key"].nunique().max()),
            "users": int(rows[["event_timestamp", "user_key"]].drop_duplicates().shape[0]), "rows": len(rows),
            "epochs": len(result.history["loss"]), "train_s": wall,
            "examples_per_s": result.examples_per_second, **{m: metrics[m] for m in METRICS}}


def sequence_point(history: pd.DataFrame, val_users: list[str], truth: dict, n: int | None, seed: int,
                   epochs: int, n_items: int) -> dict:
    from shoprank.models.sequence import SequenceConfig, SequenceRecommender

    buyers = np.array(sorted(set(history.loc[history["event_type"] == "purchase", "user_id"].astype(str))
                             - set(val_users)))
    drawn = buyers if n is None or len(buyers) <= n else np.random.default_rng(seed).choice(buyers, n, replace=False)
    train = history[history["user_id"].astype(str).isin(set(drawn))]
    started = time.perf_counter()
    model = SequenceRecommender(SequenceConfig(seed=seed, epochs=epochs)).fit(train)
    model.remember(history[history["user_id"].astype(str).isin(set(val_users))])
    wall = time.perf_counter() - started
    rankings = model.recommend(val_users, max(KS))
    metrics = evaluate_rankings(rankings, truth, KS, n_items=n_items)
    return {"users": int(len(drawn)), "vocabulary": len(model.vocabulary), "epochs": len(model.history["loss"]),
            "train_s": wall, "examples_per_s": model.examples_per_second, **{m: metrics[m] for m in METRICS}}


def baseline_points(history: pd.DataFrame, val_users: list[str], truth: dict, n_items: int) -> dict:
    """The simple baselines on the same users and period: the lines a curve must clear."""
    from shoprank.evaluation.baselines import default_baselines

    out = {}
    for model in default_baselines():
        rankings = model.fit(history).recommend(val_users, max(KS))
        metrics = evaluate_rankings(rankings, truth, KS, n_items=n_items)
        out[model.name] = {m: metrics[m] for m in METRICS}
    return out


def summarise(points: list[dict]) -> dict:
    out: dict = {}
    for key in ("users", "users_per_cutoff", "rows", "epochs", "train_s", "examples_per_s", *METRICS):
        vals = [p[key] for p in points if key in p]
        if vals:
            out[key] = float(np.mean(vals))
            if key in METRICS:
                out[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, METRICS, strict=True):
        for model, style in (("ranker", "-o"), ("sequence", "--s")):
            rows = results[model]
            x = [r["summary"]["users_per_cutoff" if model == "ranker" else "users"] for r in rows]
            y = np.array([r["summary"][metric] for r in rows])
            err = np.array([r["summary"][f"{metric}_std"] for r in rows])
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3,
                        label=f"{model} ({'users per cut-off' if model == 'ranker' else 'users'})")
        for name, style in (("popularity", ":"), ("personal_then_popular", "-.")):
            if name in results.get("baselines", {}):
                ax.axhline(results["baselines"][name][metric], color="grey", linestyle=style, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("users sampled")
        ax.set_title(f"validation {metric}")
        ax.legend(fontsize=8)
    fig.suptitle("Ta Feng, validation period 2001-01-04 .. 02-01 (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="users; 0 = all (default 1k 3k 10k all)")
    parser.add_argument("--sequence-epochs", type=int, default=8, help="the nightly's default")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = tuple(s or None for s in args.sizes) if args.sizes else SIZES

    started = time.perf_counter()
    source = open_source("tafeng")
    events = pd.concat(source.events(), ignore_index=True)
    split = make_split("temporal", events)
    validation = split.validation
    config = ServedConfig(max_users_per_cutoff=10**9, ensemble=1, use_sequence=False)
    val_users = sorted(u for u in validation.test_users if _held_out(u, config.validation_share))
    truth = {u: validation.truth[u] for u in val_users}
    print(f"validation users {len(val_users):,} (of {len(validation.test_users):,} buyers in the period)")

    pipe = ServedPipeline(split, source.items(), config)
    pipe.prepare()
    from shoprank.features.training_set import popular_at

    pipe.popular_full = popular_at(pipe.item_stats, pipe.train_at[-1], 500)  # the fill-in as of the validation
    frame = pipe.features(pipe.examples)
    fit_rows, val_rows = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    val_rows = val_rows[val_rows["user_key"].isin(set(val_users))].reset_index(drop=True)
    prepared_s = time.perf_counter() - started

    results: dict = {"ranker": [], "sequence": [],
                     "baselines": baseline_points(validation.train, val_users, truth, split.n_items)}
    with tqdm(total=2 * len(sizes) * len(args.seeds), desc="learning curve", unit="fit") as bar:
        for model in ("ranker", "sequence"):
            for n in sizes:
                points = []
                for seed in args.seeds:
                    if model == "ranker":
                        points.append(ranker_point(pipe, fit_rows, val_rows, truth, n, seed, split.n_items))
                    else:
                        points.append(sequence_point(validation.train, val_users, truth, n, seed,
                                                     args.sequence_epochs, split.n_items))
                    bar.set_postfix(model=model, n=n or "all", r20=f"{points[-1]['recall@20']:.4f}")
                    bar.update()
                results[model].append({"sample": n or "all", "runs": points, "summary": summarise(points)})
                (args.out / "learning_curve.json").write_text(json.dumps(results, indent=2))

    report = {"protocol": "Ta Feng temporal, validation period [2001-01-04, 2001-02-01); the test month unused",
              "validation_users": len(val_users), "seeds": args.seeds, "sequence_epochs": args.sequence_epochs,
              "ranker_config": "quality bench served pipeline, one ranker per point (no ensemble)",
              "prepare_s": prepared_s, "wall_s": time.perf_counter() - started, "machine": platform.node(),
              "cpus": __import__("os").cpu_count(), **results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_curve.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "learning_curve.png")
    for model in ("ranker", "sequence"):
        for row in report[model]:
            s = row["summary"]
            print(f"{model:9s} {str(row['sample']):>6s}: users {s['users']:>8.0f} R@20 {s['recall@20']:.4f} "
                  f"± {s['recall@20_std']:.4f} NDCG@10 {s['ndcg@10']:.4f} ± {s['ndcg@10_std']:.4f} "
                  f"train {s['train_s']:.0f}s")


if __name__ == "__main__":
    main()
