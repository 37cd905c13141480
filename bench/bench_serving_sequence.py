"""`make bench-serving-sequence` (part of `make bench-serving`): what the sequence model costs `/recommend`.

    .venv/bin/python -m bench.bench_serving_sequence [--rounds 3] [--duration 20] [--rate 200]

Needs the demo's state (`make demo`: its night trains a sequence model and pushes it if blessed; an
unblessed one is served here all the same, for its cost, and the results say which) and runs on the
same stack as `make bench-serving` (scratch home over the demo's store, the demo's ranker and
sequence model, a copy of its SQLite online store, the model server with the batching the last
bench-serving chose). Two APIs (two workers each) on that one model server:

- `ranker_only`: `SHOPRANK_SEQUENCE_CANDIDATES=0`, the sequence source switched off;
- `with_sequence`: the default, the sequence model's next items join the candidates (one more
  model-server call per request, before the ranker's).

They take turns, the order alternating from round to round (ABAB, BABA, ...), because this machine's
speed drifts 2x between minutes; each round sends the same shoppers to both. Per run: `GET
/recommend?k=10` open loop at `--rate` req/s, each request with its shopper's token (known customers,
one in ten new), and the sequence call's own time from each answer's Server-Timing (`sequence`).

Results: bench/results/serving_sequence.json and serving_sequence.png; the table goes into
docs/serving.md (`make docs`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import requests  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.bench_serving import RESULTS as SERVING_RESULTS  # noqa: E402
from bench.bench_serving import Shoppers, known_customers, log, scratch_stack  # noqa: E402
from bench.bench_serving_auth import Api, code_version  # noqa: E402
from bench.bench_serving_rules import arm_dots, interleaved_args, median, summary_of  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serving_sequence.json"
PLOT = ROOT / "bench" / "results" / "serving_sequence.png"
ARMS = {"ranker_only": {"SHOPRANK_SEQUENCE_CANDIDATES": "0"}, "with_sequence": {}}


def install_unblessed(stack) -> str:
    """The demo night's trained sequence model when its blessing said no (so the demo serves none):
    its cost is measured all the same, and the results say so. Exits where the night trained none."""
    from shoprank.models import SEQUENCE_MODEL_NAME
    from shoprank.serving import SERVED_LABEL
    from shoprank.serving.registry.push import write_labels
    from shoprank.storage import open_store

    runs = sorted((Path(stack.demo.home) / "kfp").glob("shoprank-nightly-*/sequence-model/model/saved_model.pb"))
    if not runs:
        sys.exit("the demo's night trained no sequence model: run `make demo` again")
    shutil.copytree(runs[-1].parent, stack.work / "models" / SEQUENCE_MODEL_NAME / "1")
    write_labels(open_store(str(stack.work / "models")), SEQUENCE_MODEL_NAME, {SERVED_LABEL: 1})
    return f"not blessed by the demo's night, served here for its cost only ({runs[-1].parent.parent.parent.name})"


def measure(args: argparse.Namespace) -> dict:
    from shoprank.serving.model_server.batching import BatchingParameters

    serving = json.loads(SERVING_RESULTS.read_text()) if SERVING_RESULTS.exists() else {}
    params = (serving.get("batching") or {}).get("parameters")
    started = time.perf_counter()
    with scratch_stack("sequence") as (stack, _):
        source = "the demo's stable sequence model"
        if not stack.has_sequence:
            source = install_unblessed(stack)
        log(f"sequence model: {source}")
        shoppers = Shoppers(stack, known_customers(stack))
        stack.start_model_server(BatchingParameters(**params) if params else None)
        apis = {arm: Api(stack, arm, env) for arm, env in ARMS.items()}
        for api in apis.values():
            api.start()
        for api in apis.values():
            api.ready()

        def run(api: Api, calls: list[loadgen.Call]) -> loadgen.RunResult:
            if args.warmup > 0:
                loadgen.run(loadgen.open_loop("127.0.0.1", api.port, iter(calls), args.rate, args.warmup))
            return loadgen.run(loadgen.open_loop("127.0.0.1", api.port, iter(calls), args.rate, args.duration,
                                                 keep_samples=True))

        runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        order_log = []
        n_requests = int(args.rate * (args.warmup + args.duration)) + 10
        for round_ in range(args.rounds):
            order = list(ARMS) if round_ % 2 == 0 else list(ARMS)[::-1]
            order_log.append(order)
            rng = random.Random(2000 + round_)
            draws = [shoppers.draw(rng, n) for n in range(n_requests)]  # the same shoppers in both arms
            for arm in order:
                load = os.getloadavg()[0]
                result = summary_of(run(apis[arm], [loadgen.Call("/recommend?k=10", shoppers.headers[u])
                                                    for u in draws]))
                result["load_avg_1m_at_start"] = round(load, 2)
                runs[arm].append(result)
                seq = result["stages"].get("sequence", {})
                log(f"round {round_ + 1}/{args.rounds} {arm}: p50 {result['p50_ms']:.2f} ms, p99 "
                    f"{result['p99_ms']:.2f} ms, sequence p50 {seq.get('p50_ms', float('nan')):.3f} ms, "
                    f"{result['errors']} errors, load {load:.2f}")
                time.sleep(args.settle)
        sample = requests.get(f"http://127.0.0.1:{apis['with_sequence'].port}/recommend", params={"k": 10},
                              headers=shoppers.headers[shoppers.known[0]], timeout=10)
    arms = {}
    for arm, rs in runs.items():
        arms[arm] = {"runs": len(rs), "p50_ms": median([r["p50_ms"] for r in rs]),
                     "p99_ms": median([r["p99_ms"] for r in rs]), "p99_ms_runs": [r["p99_ms"] for r in rs],
                     "achieved_rps": median([r["achieved_rps"] for r in rs]),
                     "sequence_p50_ms": median([r["stages"].get("sequence", {}).get("p50_ms", float("nan"))
                                                for r in rs]),
                     "sequence_p99_ms": median([r["stages"].get("sequence", {}).get("p99_ms", float("nan"))
                                                for r in rs]),
                     "errors": int(sum(r["errors"] for r in rs)),
                     "load_avg_1m_runs": [r["load_avg_1m_at_start"] for r in rs]}
    paired = [round(w["p99_ms"] / r["p99_ms"], 3)
              for w, r in zip(runs["with_sequence"], runs["ranker_only"], strict=True)]
    return {
        "bench": "serving_sequence", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"), "code": code_version(), "rate": args.rate, "duration_s": args.duration,
        "rounds": args.rounds, "order": order_log, "sequence_model": source,
        "recommend": arms, "p99_ratio_sequence_to_ranker_only_runs": paired,
        "p99_ratio_sequence_to_ranker_only": median(paired),
        "sample_status": sample.status_code, "wall_s": round(time.perf_counter() - started, 1),
    }


def markdown(results: dict) -> str:
    arms = results["recommend"]
    rows = [f"| `/recommend?k=10` at {int(results['rate'])} req/s | p50 ms | p99 ms (median of "
            f"{arms['ranker_only']['runs']}) | sequence call p50 ms | sequence call p99 ms | errors |",
            "|---|---|---|---|---|---|"]
    for arm, label in (("ranker_only", "without the sequence source"), ("with_sequence", "with it")):
        a = arms[arm]
        rows.append(f"| {label} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {a['sequence_p50_ms']:.3f} | "
                    f"{a['sequence_p99_ms']:.3f} | {a['errors']} |")
    rows.append("")
    rows.append(f"p99 with the sequence source / without, per round (interleaved): "
                f"{results['p99_ratio_sequence_to_ranker_only_runs']} "
                f"(median {results['p99_ratio_sequence_to_ranker_only']:.3f}).")
    return "\n".join(rows)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    arm_dots(ax, results["recommend"], (("ranker_only", "#777"), ("with_sequence", "#c33")))
    ax.set_xticks([0, 1], ["without the sequence source", "with it"])
    ax.set_ylabel(f"p99 ms at {int(results['rate'])} req/s")
    ax.set_title("What the sequence model costs /recommend (dots: interleaved runs; line: median)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> None:
    results = measure(interleaved_args(__doc__))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    plot(results)
    print(markdown(results))


if __name__ == "__main__":
    main()
