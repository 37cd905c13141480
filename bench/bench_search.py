"""`make bench-search`: personalised product search against non-personal and own-history baselines.

Per dataset, the queries, the temporal split and the index are built as described in
`shoprank.search.queries` / `training`, the search ranker is trained on the queries before the test
period and every method ranks the test queries through the same metric code.

- tafeng: pseudo-query = the purchased item's PRODUCT_SUBCLASS; test = February 2001 (the recommender's
  temporal split); weekly feature snapshots from 2000-12-07.
- rees46: pseudo-query = category_code words + brand, from views, carts and purchases (the sample has
  three hours and 214 purchases); test = the last 50 minutes; snapshots every 20 minutes.
- synthetic: the shop's real search events (query, then what the session did); test = the last week.

Writes bench/results/search.json and search.png, prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.evaluation.quality import interactions_of
from shoprank.features.engine.frames import feature_snapshots
from shoprank.search.index import SearchIndex
from shoprank.search.queries import pseudo_queries, session_queries
from shoprank.search.training import METRICS, SearchConfig, train_and_judge

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).with_name("results")


def popularity_at(item_stats: pd.DataFrame, at: pd.Timestamp) -> dict[str, float]:
    snap = item_stats[item_stats["event_timestamp"] == at]
    return dict(zip(snap["item_id"].astype(str), snap["item_pop_30d"].fillna(0).astype(float), strict=True))


def tafeng() -> dict:
    from shoprank.data.sources import open_source

    source = open_source("tafeng")
    events, items = pd.concat(source.events(), ignore_index=True), source.items()
    snaps = list(pd.date_range("2000-12-07", "2001-02-01", freq="7D", tz="UTC"))
    test_from = pd.Timestamp("2001-02-01", tz="UTC")
    snaps = [s for s in snaps if s < test_from] + [test_from]
    inter = interactions_of(events)
    queries = pseudo_queries(inter, items)
    return {"inter": inter, "items": items, "queries": queries, "snapshots": snaps, "test_from": test_from,
            "query": "PRODUCT_SUBCLASS of each purchase (user, day, subclass)"}


def rees46() -> dict:
    from shoprank.data.sources import open_source

    source = open_source("rees46", SHARED / "rees46-sample" / "2019-Oct-head.csv")
    events, items = pd.concat(source.events(), ignore_index=True), source.items()
    start = events["event_time"].min().floor("h")
    snaps = list(pd.date_range(start + pd.Timedelta(minutes=20), events["event_time"].max(), freq="20min"))
    test_from = events["event_time"].max().floor("10min") - pd.Timedelta(minutes=50)
    snaps = [s for s in snaps if s <= test_from]
    inter = interactions_of(events)
    queries = pseudo_queries(inter, items, event_types=("view", "cart", "purchase"), window="15min")
    return {"inter": inter, "items": items, "queries": queries, "snapshots": snaps, "test_from": test_from,
            "query": "category_code words + brand of each viewed/carted/bought item (user, 15 minutes, text)"}


def synthetic() -> dict:
    from shoprank.data.sources import open_source

    source = open_source("synthetic")
    events, items = pd.concat(source.events(), ignore_index=True), source.items()
    end = events["event_time"].max().normalize()
    test_from = end - pd.Timedelta(days=7)
    snaps = list(pd.date_range(test_from - pd.Timedelta(days=56), test_from, freq="7D"))
    inter = interactions_of(events)
    queries = session_queries(events).rename(columns={"user_id": "user_key"})
    return {"inter": inter, "items": items, "queries": queries, "snapshots": snaps, "test_from": test_from,
            "query": "real search events; relevant = what the session viewed/carted/bought after the query"}


DATASETS = {"tafeng": tafeng, "rees46": rees46, "synthetic": synthetic}


def snapshots_of(name: str, data: dict, cache: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature snapshots (the slow part), kept in `cache` between runs when one is given."""
    if cache is not None and (cache / f"{name}_users.parquet").exists():
        return pd.read_parquet(cache / f"{name}_users.parquet"), pd.read_parquet(cache / f"{name}_items.parquet")
    users, item_rows = feature_snapshots(data["inter"], data["items"], data["snapshots"])
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        users.to_parquet(cache / f"{name}_users.parquet")
        item_rows.to_parquet(cache / f"{name}_items.parquet")
    return users, item_rows


def run_dataset(name: str, config: SearchConfig, log=print, cache: Path | None = None) -> dict:
    started = time.perf_counter()
    data = DATASETS[name]()
    log(f"## {name}: {data['queries']['query_id'].nunique():,} queries ({data['query']}), "
        f"test from {data['test_from']}")
    t0 = time.perf_counter()
    users, item_rows = snapshots_of(name, data, cache)
    log(f"  {len(data['snapshots'])} snapshots in {time.perf_counter() - t0:.0f}s")
    index = SearchIndex.build(data["items"], popularity_at(item_rows, data["snapshots"][-1]))
    run = train_and_judge(data["queries"], index, users, item_rows, data["snapshots"], data["test_from"], config,
                          log=log)
    for method, metrics in run.table.items():
        log(f"  {method:28s} " + "  ".join(f"{m} {metrics[m]:.4f}" for m in METRICS))
    return {**run.table, "_facts": {**run.facts, "query": data["query"], "items": len(index),
                                    "test_from": str(data["test_from"]), "wall_s": time.perf_counter() - started,
                                    "epochs": len(run.history.get("loss", []))}}


def gains(table: dict) -> dict[str, float]:
    model = table["model/personalised"]["ndcg@10"]
    best = max(table[m]["ndcg@10"] for m in ("baseline/bm25", "baseline/bm25_popularity"))
    return {"vs_best_non_personal": model / best if best else float("nan"),
            "vs_own_frequency": model / table["baseline/own_frequency"]["ndcg@10"]
            if table["baseline/own_frequency"]["ndcg@10"] else float("nan")}


def markdown(results: dict) -> str:
    lines = ["| dataset | method | NDCG@10 | MRR | HR@10 | Recall@50 |", "|---|---|---|---|---|---|"]
    for name, table in results.items():
        for method, m in table.items():
            if method.startswith("_"):
                continue
            lines.append(f"| {name} | {method} | {m['ndcg@10']:.4f} | {m['mrr']:.4f} | {m['hr@10']:.4f} | "
                         f"{m['recall@50']:.4f} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (name, table) in zip(axes[0], results.items(), strict=True):
        methods = [m for m in table if not m.startswith("_")]
        values = [table[m]["ndcg@10"] for m in methods]
        ax.barh(np.arange(len(methods)), values, color=["#999"] * (len(methods) - 1) + ["#c44"])
        ax.set_yticks(np.arange(len(methods)), [m.split("/")[1] for m in methods])
        ax.set_title(f"{name}: NDCG@10")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--max-train-queries", type=int, default=SearchConfig.max_train_queries)
    parser.add_argument("--max-eval-queries", type=int, default=SearchConfig.max_eval_queries)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--snapshot-cache", type=Path, default=None,
                        help="keep the feature snapshots here between runs (they take minutes on Ta Feng)")
    args = parser.parse_args(argv)
    config = SearchConfig(max_train_queries=args.max_train_queries, max_eval_queries=args.max_eval_queries)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "search.json"
    results = json.loads(target.read_text()) if target.exists() else {}
    for name in args.datasets:
        results[name] = run_dataset(name, config, cache=args.snapshot_cache)
        results[name]["_facts"]["ndcg@10_ratio"] = gains(results[name])
        target.write_text(json.dumps(results, indent=2, default=str))
    plot({k: v for k, v in results.items() if k in DATASETS}, args.out / "search.png")
    print(markdown(results))
    for name, table in results.items():
        print(f"{name}: NDCG@10 x{table['_facts']['ndcg@10_ratio']['vs_best_non_personal']:.2f} vs the best "
              f"non-personal baseline, x{table['_facts']['ndcg@10_ratio']['vs_own_frequency']:.2f} vs own frequency")


if __name__ == "__main__":
    main()
