"""`make bench-serving-rules` (part of `make bench-serving`): what the merchandising rules cost.

    .venv/bin/python -m bench.bench_serving_rules [--rounds 3] [--duration 20] [--rate 200]

Needs the demo's state (`make demo`) and runs on the same stack as `make bench-serving` (scratch home
over the demo's store, the demo's ranker, a copy of its SQLite online store, the model server with
the batching the last bench-serving chose, the API with two workers). One API, two arms that take
turns, the order alternating from round to round (ABAB, BABA, ...), because this machine's speed
drifts 2x between minutes:

- `none`: no rule set, everything in stock;
- `rules`: a realistic set: 5% of the catalogue out of stock (with substitution), one campaign
  boosting the most popular category, at most 3 items per category in the top 10, 2 new-item slots
  (with 40 items added "today" across the popular categories).

An arm is switched through the admin API (`PUT /merchandising/rules`, `PUT /catalogue/availability`),
and the bench waits until both workers serve it. Per run: `GET /recommend?k=10` open loop at
`--rate` req/s, each request with its shopper's token (known customers, one in ten new), and the
decision stage's own time from each answer's Server-Timing (`decide`). Then `GET /similar/{item}`
open loop at `--rate` req/s (rules on) for popular items.

Results: bench/results/serving_rules.json and serving_rules.png; the table goes into
docs/serving.md (`make docs`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import requests  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.bench_intake import catalogue_items  # noqa: E402
from bench.bench_serving import RESULTS as SERVING_RESULTS  # noqa: E402
from bench.bench_serving import (  # noqa: E402
    Shoppers,
    known_customers,
    log,
    scratch_stack,
    stage_breakdown,
)
from bench.bench_serving_auth import Api, code_version  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serving_rules.json"
PLOT = ROOT / "bench" / "results" / "serving_rules.png"
ARMS = ("none", "rules")
OUT_OF_STOCK_SHARE = 0.05
NEW_ITEMS = 40


def realistic_rules(category: str) -> str:
    return (f'version = "bench-rules"\nsubstitute_out_of_stock = true\nnew_item_slots = 2\n'
            f'[diversity]\nper_category = 3\ntop_k = 10\n'
            f'[[boost]]\nname = "campaign"\ncategories = ["{category}"]\nfactor = 1.3\n'
            f'start = 2000-01-01T00:00:00Z\nend = 2100-01-01T00:00:00Z\n')


class Merchandiser:
    """Switches the API between the arms through the admin routes, and checks both workers serve it."""

    def __init__(self, api: Api, admin: dict[str, str], catalogue: dict[str, dict], seed: int = 0) -> None:
        self.url, self.admin = f"http://127.0.0.1:{api.port}", admin
        rng = random.Random(seed)
        ids = sorted(catalogue)
        self.out = rng.sample(ids, int(OUT_OF_STOCK_SHARE * len(ids)))
        popular = [c for c, _ in sorted(_counts(catalogue).items(), key=lambda kv: -kv[1])[:10]]
        self.category = popular[0]
        self.new = [{"item_id": f"bench-new-{n}", "category": popular[n % len(popular)], "brand": None,
                     "price": 10.0 + n, "title": f"bench new item {n}"} for n in range(NEW_ITEMS)]

    def _put(self, path: str, **kwargs) -> None:
        answer = requests.put(f"{self.url}{path}", headers=self.admin, timeout=60, **kwargs)
        if answer.status_code != 200:
            sys.exit(f"PUT {path} answered {answer.status_code}: {answer.text[:500]}")

    def add_new_items(self) -> None:
        self._put("/catalogue/items", json=self.new)

    def switch(self, arm: str) -> None:
        text = realistic_rules(self.category) if arm == "rules" else 'version = "none"\n'
        self._put("/merchandising/rules", data=text.encode())
        self._put("/catalogue/availability", json=[{"item_id": i, "in_stock": arm != "rules"} for i in self.out])
        version = "bench-rules" if arm == "rules" else "none"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every worker polls the store (2 s): wait until both serve it
            seen = {requests.get(f"{self.url}/merchandising/rules", headers=self.admin, timeout=10).json()["version"]
                    for _ in range(8)}
            if seen == {version}:
                time.sleep(2.5)  # the availability feed is polled on the same tick; one more for safety
                return
            time.sleep(0.5)
        sys.exit(f"the API's workers did not all serve rule set {version!r} within 20 s")


def _counts(catalogue: dict[str, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for entry in catalogue.values():
        out[entry["category"]] = out.get(entry["category"], 0) + 1
    return out


def demo_catalogue(stack) -> dict[str, dict]:
    import io

    import pyarrow.parquet as pq

    from shoprank.layout import CATALOGUE_KEY
    from shoprank.storage import open_store

    store = open_store(stack.demo.store)
    if not store.exists(CATALOGUE_KEY):
        sys.exit(f"no {CATALOGUE_KEY} in the demo's store: run `make demo` again (the neighbours step writes it)")
    frame = pq.read_table(io.BytesIO(store.get_bytes(CATALOGUE_KEY))).to_pandas()
    return {str(r.item_id): {"category": r.category} for r in frame.itertuples()}


def summary_of(result: loadgen.RunResult) -> dict:
    out = result.summary()
    out["stages"] = stage_breakdown(result)
    return out


def median(values: list[float]) -> float:
    return round(float(np.median(values)), 3)


def measure(args: argparse.Namespace) -> dict:
    from shoprank.layout import MERCHANDISING_PREFIX
    from shoprank.serving.model_server.batching import BatchingParameters
    from shoprank.storage import open_store

    serving = json.loads(SERVING_RESULTS.read_text()) if SERVING_RESULTS.exists() else {}
    params = (serving.get("batching") or {}).get("parameters")
    started = time.perf_counter()
    with scratch_stack("rules") as (stack, scope):
        demo_store = open_store(stack.demo.store)
        demo_store.delete_prefix(MERCHANDISING_PREFIX + "/")
        scope.callback(demo_store.delete_prefix, MERCHANDISING_PREFIX + "/")  # the demo's store is left as found
        shoppers = Shoppers(stack, known_customers(stack))
        admin = stack.api_key("bench-merchandiser", ["admin"])
        popular = catalogue_items(stack)[:500]
        api = Api(stack, "rules", {})
        stack.start_model_server(BatchingParameters(**params) if params else None)
        api.start()
        api.ready()
        merchandiser = Merchandiser(api, admin, demo_catalogue(stack))
        merchandiser.add_new_items()

        def run(calls) -> loadgen.RunResult:
            if args.warmup > 0:
                loadgen.run(loadgen.open_loop("127.0.0.1", api.port, calls, args.rate, args.warmup))
            return loadgen.run(loadgen.open_loop("127.0.0.1", api.port, calls, args.rate, args.duration,
                                                 keep_samples=True))

        runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        similar_runs: list[dict] = []
        order_log = []
        n_requests = int(args.rate * (args.warmup + args.duration)) + 10
        for round_ in range(args.rounds):
            order = ARMS if round_ % 2 == 0 else ARMS[::-1]
            order_log.append(list(order))
            rng = random.Random(1000 + round_)
            draws = [shoppers.draw(rng, n) for n in range(n_requests)]  # the same shoppers in both arms
            for arm in order:
                merchandiser.switch(arm)
                load = os.getloadavg()[0]
                result = summary_of(run(iter([loadgen.Call("/recommend?k=10", shoppers.headers[u]) for u in draws])))
                result["load_avg_1m_at_start"] = round(load, 2)
                runs[arm].append(result)
                decide = result["stages"].get("decide", {})
                log(f"round {round_ + 1}/{args.rounds} {arm}: p50 {result['p50_ms']:.2f} ms, p99 "
                    f"{result['p99_ms']:.2f} ms, decide p50 {decide.get('p50_ms', float('nan')):.3f} ms, "
                    f"{result['errors']} errors, load {load:.2f}")
                time.sleep(args.settle)
            merchandiser.switch("rules")
            items = [rng.choice(popular) for _ in range(n_requests)]
            similar = summary_of(run(iter([loadgen.Call(f"/similar/{item}?k=10", {}) for item in items])))
            similar_runs.append(similar)
            log(f"round {round_ + 1}/{args.rounds} /similar: p50 {similar['p50_ms']:.2f} ms, p99 "
                f"{similar['p99_ms']:.2f} ms, {similar['errors']} errors")
            time.sleep(args.settle)
        sample = requests.get(f"http://127.0.0.1:{api.port}/recommend", params={"k": 10},
                              headers=shoppers.headers[shoppers.known[0]], timeout=10).json()
    arms = {}
    for arm in ARMS:
        rs = runs[arm]
        arms[arm] = {"runs": len(rs), "p50_ms": median([r["p50_ms"] for r in rs]),
                     "p99_ms": median([r["p99_ms"] for r in rs]), "p99_ms_runs": [r["p99_ms"] for r in rs],
                     "achieved_rps": median([r["achieved_rps"] for r in rs]),
                     "decide_p50_ms": median([r["stages"].get("decide", {}).get("p50_ms", float("nan")) for r in rs]),
                     "decide_p99_ms": median([r["stages"].get("decide", {}).get("p99_ms", float("nan")) for r in rs]),
                     "errors": int(sum(r["errors"] for r in rs)),
                     "load_avg_1m_runs": [r["load_avg_1m_at_start"] for r in rs]}
    paired = [round(r["p99_ms"] / n["p99_ms"], 3) for r, n in zip(runs["rules"], runs["none"], strict=True)]
    return {
        "bench": "serving_rules", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"), "code": code_version(), "rate": args.rate, "duration_s": args.duration,
        "rounds": args.rounds, "order": order_log,
        "rule_set": {"out_of_stock_share": OUT_OF_STOCK_SHARE, "campaign_category": merchandiser.category,
                     "boost": 1.3, "diversity": "3 per category in the top 10", "new_item_slots": 2,
                     "new_items": NEW_ITEMS, "substitute_out_of_stock": True},
        "recommend": arms, "p99_ratio_rules_to_none_runs": paired, "p99_ratio_rules_to_none": median(paired),
        "similar": {"runs": len(similar_runs), "p50_ms": median([s["p50_ms"] for s in similar_runs]),
                    "p99_ms": median([s["p99_ms"] for s in similar_runs]),
                    "p99_ms_runs": [s["p99_ms"] for s in similar_runs],
                    "achieved_rps": median([s["achieved_rps"] for s in similar_runs]),
                    "errors": int(sum(s["errors"] for s in similar_runs))},
        "sample_reasons": sorted({i["reason"]["template"] for i in sample["items"]}),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def markdown(results: dict) -> str:
    arms = results["recommend"]
    rows = ["| `/recommend?k=10` at {} req/s | p50 ms | p99 ms (median of {}) | decide p50 ms | decide p99 ms | "
            "errors |".format(int(results["rate"]), arms["none"]["runs"]), "|---|---|---|---|---|---|"]
    for arm, label in (("none", "no rules"), ("rules", "realistic rule set")):
        a = arms[arm]
        rows.append(f"| {label} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {a['decide_p50_ms']:.3f} | "
                    f"{a['decide_p99_ms']:.3f} | {a['errors']} |")
    s = results["similar"]
    rows.append(f"| `/similar/{{item}}?k=10`, rules on | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | | | {s['errors']} |")
    rows.append("")
    rows.append(f"p99 with rules / without, per round (interleaved): {results['p99_ratio_rules_to_none_runs']} "
                f"(median {results['p99_ratio_rules_to_none']:.3f}).")
    return "\n".join(rows)


def arm_dots(ax, arms: dict, colours: tuple[tuple[str, str], ...]) -> None:
    """Each arm's p99 of every interleaved run (dots) and their median (a line), arm n at x = n."""
    for n, (arm, colour) in enumerate(colours):
        runs = arms[arm]["p99_ms_runs"]
        ax.scatter([n] * len(runs), runs, color=colour, label=arm)
        ax.hlines(arms[arm]["p99_ms"], n - 0.2, n + 0.2, color=colour)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    arm_dots(ax, results["recommend"], (("none", "#777"), ("rules", "#c33")))
    ax.scatter([2] * len(results["similar"]["p99_ms_runs"]), results["similar"]["p99_ms_runs"], color="#36c",
               label="/similar")
    ax.set_xticks([0, 1, 2], ["no rules", "realistic rules", "/similar"])
    ax.set_ylabel(f"p99 ms at {int(results['rate'])} req/s")
    ax.set_title("What the merchandising rules cost (each dot one interleaved run; line: median)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def interleaved_args(doc: str) -> argparse.Namespace:
    """The options of an interleaved two-arm serving bench (this one and its siblings)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--settle", type=float, default=2.0)
    return parser.parse_args()


def main() -> None:
    args = interleaved_args(__doc__)
    results = measure(args)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)
    print(markdown(results))


if __name__ == "__main__":
    main()
