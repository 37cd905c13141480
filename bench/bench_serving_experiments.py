"""`make bench-serving-experiments`: what an interleaved experiment arm costs `/recommend`.

    .venv/bin/python -m bench.bench_serving_experiments [--rounds 3] [--duration 20] [--rate 200]

Needs the demo's state (`make demo`) and runs on the stack of `make bench-serving`: a scratch home
over the demo's store, the demo's ranker, a copy of its SQLite online store, and the model server
with the batching the last bench-serving chose.

The ranker is labelled both `stable` and `canary`, so the two rankers of the interleaved arm are the
same model and only the mechanism is measured: two model calls on the same candidates, and the team
draft. An experiment splits the shoppers 50/50 between `control` (stable alone) and `interleaved`
(team draft of stable and canary). The two arms run in the same open-loop run at `--rate` req/s, so
they share the machine's speed at every moment. Each answer's arm is read from its `X-Experiment`
header, and its latency is taken from the load generator. The model stage is read from Server-Timing
(`predict`).

Results: bench/results/serving_experiments.json; the table goes into docs/experiments.md (`make docs`).
"""

from __future__ import annotations

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

from bench import loadgen  # noqa: E402
from bench.bench_serving import RESULTS as SERVING_RESULTS  # noqa: E402
from bench.bench_serving import Shoppers, known_customers, log, scratch_stack  # noqa: E402
from bench.bench_serving_auth import Api, code_version  # noqa: E402
from bench.bench_serving_rules import interleaved_args, median  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serving_experiments.json"
EXPERIMENT = {"name": "bench-interleaving", "route": "recommend", "salt": "bench-interleaving",
              "arms": [{"name": "control", "label": "stable", "share": 0.5},
                       {"name": "interleaved", "interleave": ["stable", "canary"], "share": 0.5}],
              "max_hours": 1e6, "max_requests": 10**12}


def _predict_ms(headers: dict[str, str]) -> float:
    for part in headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name == "predict":
            return float(rest)
    return float("nan")


def by_arm(result: loadgen.RunResult) -> dict[str, dict]:
    """p50/p99 of the end-to-end latency and of the model stage, per arm named by the answer."""
    latency: dict[str, list[float]] = {}
    predict: dict[str, list[float]] = {}
    errors = 0
    for due, done, status, headers, _ in result.samples:
        if status != 200:
            errors += 1
            continue
        arm = headers.get("x-experiment", "none").partition("arm=")[2] or "none"
        latency.setdefault(arm, []).append((done - due) * 1000)
        predict.setdefault(arm, []).append(_predict_ms(headers))
    return {arm: {"requests": len(values), "p50_ms": float(np.percentile(values, 50)),
                  "p99_ms": float(np.percentile(values, 99)),
                  "predict_p50_ms": float(np.nanpercentile(predict[arm], 50)),
                  "predict_p99_ms": float(np.nanpercentile(predict[arm], 99)), "errors": errors}
            for arm, values in latency.items()}


def measure(args) -> dict:
    from shoprank.evaluation.experiments.config import parse_experiment, write_experiment
    from shoprank.models import MODEL_NAME
    from shoprank.serving.model_server.batching import BatchingParameters
    from shoprank.serving.model_server.versions import read_labels
    from shoprank.serving.registry.push import write_labels
    from shoprank.storage import open_store

    serving = json.loads(SERVING_RESULTS.read_text()) if SERVING_RESULTS.exists() else {}
    params = (serving.get("batching") or {}).get("parameters")
    started = time.perf_counter()
    with scratch_stack("experiments") as (stack, _):
        models = open_store(str(stack.work / "models"))
        stable = read_labels(models, MODEL_NAME)["stable"]
        write_labels(models, MODEL_NAME, {"stable": stable, "canary": stable})
        write_experiment(models, parse_experiment(EXPERIMENT))
        shoppers = Shoppers(stack, known_customers(stack))
        stack.start_model_server(BatchingParameters(**params) if params else None)
        api = Api(stack, "experiments", {})
        api.start()
        api.ready()
        n_requests = int(args.rate * (args.warmup + args.duration)) + 10
        rounds = []
        for round_ in range(args.rounds):
            rng = random.Random(3000 + round_)
            calls = [loadgen.Call("/recommend?k=10", shoppers.headers[shoppers.draw(rng, n)])
                     for n in range(n_requests)]
            if args.warmup > 0:
                loadgen.run(loadgen.open_loop("127.0.0.1", api.port, iter(calls), args.rate, args.warmup))
            result = loadgen.run(loadgen.open_loop("127.0.0.1", api.port, iter(calls), args.rate, args.duration,
                                                   keep_samples=True))
            arms = by_arm(result)
            rounds.append(arms)
            log(f"round {round_ + 1}/{args.rounds}: " + "; ".join(
                f"{a} p50 {m['p50_ms']:.2f} p99 {m['p99_ms']:.2f} ms ({m['requests']})" for a, m in arms.items()))
            time.sleep(args.settle)
    summary = {arm: {k: median([r[arm][k] for r in rounds if arm in r])
                     for k in ("p50_ms", "p99_ms", "predict_p50_ms", "predict_p99_ms")}
               for arm in ("control", "interleaved")}
    ratios = [round(r["interleaved"]["p99_ms"] / r["control"]["p99_ms"], 3) for r in rounds
              if "interleaved" in r and "control" in r]
    predict_ratios = [round(r["interleaved"]["predict_p50_ms"] / r["control"]["predict_p50_ms"], 3) for r in rounds
                      if "interleaved" in r and "control" in r]
    return {"bench": "serving_experiments", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"), "code": code_version(), "rate": args.rate,
            "duration_s": args.duration, "rounds": rounds, "arms": summary,
            "p99_ratio_interleaved_to_control_runs": ratios, "p99_ratio_interleaved_to_control": median(ratios),
            "predict_p50_ratio_runs": predict_ratios, "predict_p50_ratio": median(predict_ratios),
            "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    results = measure(interleaved_args(__doc__))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("arms", "p99_ratio_interleaved_to_control_runs",
                                                "predict_p50_ratio_runs")}, indent=1))


if __name__ == "__main__":
    main()
