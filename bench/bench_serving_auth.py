"""`make bench-serving-auth`: what authenticating callers costs the online API.

    .venv/bin/python -m bench.bench_serving_auth [--rounds 4] [--duration 20] [--rate 200]

Needs the demo's state (`make demo`), as `make bench-serving`, on the same stack (scratch home, the
demo's model and a copy of its SQLite online store, the model server with the batching the last
bench-serving chose, the API with two workers, all on this machine's cores with the load
generator). Two APIs run side by side on that stack, one per arm, and take turns:

- `token` (as deployed): each request carries its shopper's bearer token (an Ed25519 JWT issued up
  front by the bench, which plays the private zone), verified on every request, and the rate limits
  are on at their default settings (per shopper, per API key), counted in a real `redis-server` on
  loopback (one round trip a request);
- `key`: the same personalised requests without token verification or rate limiting: an API key
  with scope `read` names the shopper (`?subject=<pseudonym>`; `events:write` for the intake), and
  both limits are off (`SHOPRANK_RATE_LIMIT_KEY_PER_MIN=0`, `SHOPRANK_RATE_LIMIT_SUBJECT_PER_MIN=0`).
  The key is still looked up (a SHA-256 and a dict), which is all that remains of authentication;
- `token_local` (where the cost goes): the tokens of `token`, the limits counted in each API
  process instead of Redis (`rate_limit_redis` empty).

Per round, every arm in turn, the order rotating from round to round (with 3 rounds each arm runs
once first, once second, once last):
1. `GET /recommend?k=10` open loop at `--rate` req/s (latency from each request's due time), the same
   sequence of shoppers in both arms: known customers, one request in ten from a new customer (cold);
2. `POST /events` closed loop (`--connections` senders, each sending its next batch when the last is
   answered): batches of `--batch` views of one shopper (what a front end sends), the same bodies in
   both arms (`user_id` is the shopper's pseudonym, which the token permits), every event accepted.
Besides latency and events/s, the CPU time of each arm's API processes per request (and of Redis) is
read from /proc: on a shared machine it is steadier than latency.

Results: bench/results/serving_auth.json and serving_auth.png; the table is printed and is what
`make docs` puts into docs/serving.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import requests  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.bench_intake import catalogue_items  # noqa: E402
from bench.bench_serving import (  # noqa: E402
    COLD_SHARE,
    Shoppers,
    Stack,
    free_port,
    known_customers,
    log,
    redis_server,
    scratch_stack,
)
from bench.bench_serving import RESULTS as SERVING_RESULTS  # noqa: E402
from bench.processes import wait_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serving_auth.json"
PLOT = ROOT / "bench" / "results" / "serving_auth.png"
ARMS = ("key", "token_local", "token")
LABELS = {"token": "bearer token per shopper, rate limits on (Redis)",
          "key": "API key naming ?subject=, no token check, no rate limits",
          "token_local": "bearer token per shopper, rate limits counted in process"}


def with_token(arm: str) -> bool:
    return arm.startswith("token")


def code_version() -> dict:
    """The commit measured, and whether shoprank/ differed from it (uncommitted changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "shoprank_changed": bool(git("status", "--porcelain", "shoprank"))}


def default_limit(name: str) -> int:
    from shoprank.settings import Settings

    return int(next(f.default for f in fields(Settings) if f.name == name))


class Api:
    """One arm's API (two workers) on the shared stack, with its own ports, event log and settings."""

    def __init__(self, stack: Stack, arm: str, env: dict[str, str]) -> None:
        self.stack, self.arm = stack, arm
        self.port, self.internal = free_port(), free_port()
        self.env = {**env, "SHOPRANK_EVENT_LOG": str(stack.work / f"events-{arm}"), "SHOPRANK_EVENT_ROLL_S": "86400"}
        self.log = stack.work / f"api-{arm}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        logfile = open(self.log, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoprank.cli", "serve-api", "--port", str(self.port), "--internal-port",
             str(self.internal), "--workers", "2"], env={**self.stack.env(self.stack.sqlite), **self.env},
            stdout=logfile, stderr=subprocess.STDOUT)
        self.stack.procs[f"api-{self.arm}"] = self.proc  # stopped with the stack

    def ready(self) -> None:
        wait_ready(f"http://127.0.0.1:{self.internal}/readyz", self.log)

    def lines_matching(self, pattern: str) -> int:
        """Lines of the API's log that match `pattern` (a regular expression)."""
        found = re.compile(pattern)
        return sum(bool(found.search(line)) for line in self.log.read_text(errors="replace").splitlines())

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the server and its workers so far."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            return float("nan")


def redis_cpu_s(url: str) -> float:
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "redis-server" and str(port) in " ".join(proc.info["cmdline"] or []):
            return sum(proc.cpu_times()[:2])
    return float("nan")


def recommend_requests(arm: str, draws: list[str], shoppers: Shoppers, reader: dict[str, str]):
    if with_token(arm):
        return iter([loadgen.Call("/recommend?k=10", shoppers.headers[user]) for user in draws])
    return iter([loadgen.Call(f"/recommend?k=10&subject={shoppers.subjects[user]}", reader) for user in draws])


def event_batches(shoppers: Shoppers, items: list[str], batch: int, seed: int):
    """Endless (shopper, batch): `batch` views of one known shopper, each naming their pseudonym."""
    rng = random.Random(seed)
    prefix = uuid.uuid4().hex[:16]  # fresh ids per run (a repeat would be answered as a duplicate)
    at = datetime.now(UTC).isoformat()
    counter = itertools.count()
    while True:
        user = rng.choice(shoppers.known)
        subject = shoppers.subjects[user]
        yield user, [{"event_id": f"{prefix}{next(counter):010x}", "event_type": "view", "user_id": subject,
                      "event_time": at, "item_id": rng.choice(items)} for _ in range(batch)]


def event_requests(arm: str, shoppers: Shoppers, writer: dict[str, str], items: list[str], batch: int, seed: int):
    """Endless POST /events; the same bodies in both arms, the token of the batch's shopper or the key."""
    for user, body in event_batches(shoppers, items, batch, seed):
        yield loadgen.Call("/events", shoppers.headers[user] if with_token(arm) else writer, body=body)


def accepted_all(batch: int):
    def check(response: loadgen.Response) -> str | None:
        answer = json.loads(response.body)
        return None if answer.get("accepted") == batch else "not_accepted"

    return check


def preflight(apis: dict[str, Api], shoppers: Shoppers, reader: dict[str, str], writer: dict[str, str],
              items: list[str], redis_url: str) -> dict:
    """Both arms answer the same personalised list for a known shopper, a cold start for a new one,
    and take a batch; the token arm counts its limits in Redis."""
    import redis

    known, cold = shoppers.known[0], shoppers.cold[0]
    lists = {}
    for arm, api in apis.items():
        url = f"http://127.0.0.1:{api.port}"
        for user, expect_personal in ((known, True), (cold, False)):
            if with_token(arm):
                answer = requests.get(f"{url}/recommend", params={"k": 10}, headers=shoppers.headers[user], timeout=10)
            else:
                answer = requests.get(f"{url}/recommend", params={"k": 10, "subject": shoppers.subjects[user]},
                                      headers=reader, timeout=10)
            body = answer.json()
            if answer.status_code != 200 or body["personalised"] != expect_personal:
                sys.exit(f"{arm}: /recommend for {'a known' if expect_personal else 'a new'} shopper answered "
                         f"{answer.status_code} {json.dumps(body)[:300]}")
            lists[(arm, user)] = [i["item_id"] for i in body["items"]]
        user, body = next(event_batches(shoppers, items, 2, seed=0))
        sent = requests.post(f"{url}/events", json=body, headers=shoppers.headers[user] if with_token(arm) else writer,
                             timeout=10)
        if sent.status_code != 200 or sent.json()["accepted"] != 2:
            sys.exit(f"{arm}: POST /events answered {sent.status_code} {sent.text[:300]}")
    counted = redis.Redis.from_url(redis_url).keys("shoprank:rate:*")
    if not counted:
        sys.exit("the token arm counted no rate limit in Redis: is SHOPRANK_RATE_LIMIT_REDIS taken?")
    return {"same_list_for_known_shopper": all(lists[(arm, known)] == lists[("key", known)] for arm in apis),
            "rate_limit_keys_in_redis": len(counted)}


def one_run(api: Api, redis_url: str, make, run, requests_of) -> dict:
    cpu, redis_before, load = api.cpu_s(), redis_cpu_s(redis_url), os.getloadavg()[0]
    result = run(api, make)
    summary = result.summary()
    n = summary["requests"]
    summary["api_cpu_ms_per_request"] = round((api.cpu_s() - cpu) * 1000 / max(n, 1), 3)
    summary["redis_cpu_ms_per_request"] = round((redis_cpu_s(redis_url) - redis_before) * 1000 / max(n, 1), 4)
    summary["load_avg_1m_at_start"] = round(load, 2)
    if requests_of is not None:
        summary.update(requests_of(result))
    return summary


def median(runs: list[dict], key: str) -> float:
    return round(float(np.median([r[key] for r in runs])), 3)


def combine(runs: list[dict], keys: tuple[str, ...]) -> dict:
    out: dict = {"runs": len(runs)}
    for key in keys:
        out[key] = median(runs, key)
        out[f"{key}_runs"] = [round(r[key], 3) for r in runs]
    out["load_avg_1m_runs"] = [r["load_avg_1m_at_start"] for r in runs]
    out["errors"] = int(sum(r["errors"] for r in runs))
    kinds: dict[str, int] = {}
    for r in runs:
        for kind, count in r["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    out["error_kinds"] = kinds
    return out


RECOMMEND_KEYS = ("achieved_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "api_cpu_ms_per_request",
                  "redis_cpu_ms_per_request")
INTAKE_KEYS = ("events_per_s", "batches_per_s", "p50_ms", "p99_ms", "api_cpu_ms_per_request",
               "redis_cpu_ms_per_request")


def paired_ratios(token: list[dict], key: list[dict], metric: str) -> list[float]:
    """token / key per round (the two arms of a round ran back to back)."""
    return [round(t[metric] / k[metric], 3) if k[metric] else float("nan") for t, k in zip(token, key, strict=True)]


def measure(args: argparse.Namespace) -> dict:
    from shoprank.serving.model_server.batching import BatchingParameters

    serving = json.loads(SERVING_RESULTS.read_text()) if SERVING_RESULTS.exists() else {}
    params = (serving.get("batching") or {}).get("parameters")
    started = time.perf_counter()
    with scratch_stack("auth") as (stack, scope):
        redis_url = scope.enter_context(redis_server(stack.work))
        if redis_url is None:
            sys.exit("redis-server is not installed (the token arm counts its rate limits in Redis): "
                     "`bash .ci/services.sh start` installs it")
        shoppers = Shoppers(stack, known_customers(stack))
        reader = stack.api_key("bench-auth-read", ["read"])
        writer = stack.api_key("bench-auth-events", ["events:write"])
        items = catalogue_items(stack)
        limits = {"rate_limit_key_per_min": default_limit("rate_limit_key_per_min"),
                  "rate_limit_subject_per_min": default_limit("rate_limit_subject_per_min")}
        deployed = {f"SHOPRANK_{k.upper()}": str(v) for k, v in limits.items()}
        settings = {"token": {"SHOPRANK_RATE_LIMIT_REDIS": redis_url, **deployed},
                    "key": {"SHOPRANK_RATE_LIMIT_REDIS": "", "SHOPRANK_RATE_LIMIT_KEY_PER_MIN": "0",
                            "SHOPRANK_RATE_LIMIT_SUBJECT_PER_MIN": "0"},
                    "token_local": {"SHOPRANK_RATE_LIMIT_REDIS": "", **deployed}}
        arms = tuple(a for a in ARMS if a in args.arms)
        apis = {arm: Api(stack, arm, settings[arm]) for arm in arms}
        stack.start_model_server(BatchingParameters(**params) if params else None)
        for api in apis.values():
            api.start()
        for api in apis.values():
            api.ready()
        checks = preflight(apis, shoppers, reader, writer, items, redis_url)
        log(f"preflight: {checks}")

        def recommend(api: Api, calls) -> loadgen.RunResult:
            if args.warmup > 0:
                loadgen.run(loadgen.open_loop("127.0.0.1", api.port, calls, args.rate, args.warmup))
            return loadgen.run(loadgen.open_loop("127.0.0.1", api.port, calls, args.rate, args.duration))

        def intake(api: Api, calls) -> loadgen.RunResult:
            return loadgen.run(loadgen.closed_loop("127.0.0.1", api.port, calls, args.connections, args.duration,
                                                   check=accepted_all(args.batch)))

        def intake_rates(result: loadgen.RunResult) -> dict:
            span = max(result.last_done - result.first_due, 1e-9)
            return {"events_per_s": round(result.ok * args.batch / span, 1),
                    "batches_per_s": round(result.ok / span, 1)}

        runs: dict[str, dict[str, list[dict]]] = {part: {arm: [] for arm in arms} for part in ("recommend", "intake")}
        order_log = []
        n_requests = int(args.rate * (args.warmup + args.duration)) + 10
        for round_ in range(args.rounds):
            shift = round_ % len(arms)
            order = arms[shift:] + arms[:shift]
            order_log.append(list(order))
            rng = random.Random(1000 + round_)
            draws = [shoppers.draw(rng, n) for n in range(n_requests)]  # the same shoppers in every arm
            for arm in order:
                summary = one_run(apis[arm], redis_url, recommend_requests(arm, draws, shoppers, reader),
                                  recommend, None)
                runs["recommend"][arm].append(summary)
                log(f"round {round_ + 1}/{args.rounds} recommend {arm}: p50 {summary['p50_ms']:.2f} ms, p99 "
                    f"{summary['p99_ms']:.2f} ms, {summary['errors']} errors, API CPU "
                    f"{summary['api_cpu_ms_per_request']:.2f} ms/request, load {summary['load_avg_1m_at_start']}")
                time.sleep(args.settle)
            for arm in order:
                calls = event_requests(arm, shoppers, writer, items, args.batch, seed=2000 + round_)
                summary = one_run(apis[arm], redis_url, calls, intake, intake_rates)
                runs["intake"][arm].append(summary)
                log(f"round {round_ + 1}/{args.rounds} intake {arm}: {summary['events_per_s']:,.0f} events/s, "
                    f"batch p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms, {summary['errors']} "
                    f"errors, API CPU {summary['api_cpu_ms_per_request']:.2f} ms/batch")
                time.sleep(args.settle)
        # a limiter that cannot reach Redis lets requests through uncounted for a while, and says so
        outages = {arm: api.lines_matching(r"rate limits? not counted") for arm, api in apis.items()}
    recommend_arms = {arm: combine(runs["recommend"][arm], RECOMMEND_KEYS) for arm in arms}
    intake_arms = {arm: combine(runs["intake"][arm], INTAKE_KEYS) for arm in arms}

    def ratios(combined: dict, part: str, metrics: tuple[str, ...], arm: str = "token") -> dict:
        """`arm` over `key`: the ratio of the medians, and each round's (the arms ran minutes apart)."""
        out = {}
        for metric in metrics:
            base = combined["key"][metric]
            out[metric] = round(combined[arm][metric] / base, 3) if base else None
            out[f"{metric}_by_round"] = paired_ratios(runs[part][arm], runs[part]["key"], metric)
        return out

    recommend_metrics = ("p50_ms", "p99_ms", "api_cpu_ms_per_request")
    intake_metrics = ("events_per_s", "p50_ms", "p99_ms", "api_cpu_ms_per_request")

    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "method": "one API per arm (2 workers each), side by side on one stack (SQLite online store), with the model "
                  "server and the load generator on the same cores; every arm in each round, the order rotating "
                  "from round to round; medians over rounds; CPU per request from /proc (the API's server and "
                  "workers; redis-server)",
        "arms": {arm: LABELS[arm] for arm in arms},
        "rate_limits": {"token": {**limits, "counted_in": "redis-server on loopback"}, "key": "off (both limits 0)",
                        "token_local": {**limits, "counted_in": "each API process"}},
        "rounds": args.rounds, "order": order_log, "duration_s": args.duration, "warmup_s": args.warmup,
        "batching": params,
        "preflight": checks,
        "rate_limit_outages_logged": outages,
        "code": code_version(),
        "recommend": {"rate": args.rate, "cold_share": COLD_SHARE, "known_shoppers": len(shoppers.known),
                      "arms": recommend_arms,
                      **{f"{arm}_over_key": ratios(recommend_arms, "recommend", recommend_metrics, arm)
                         for arm in arms if arm != "key"}},
        "intake": {"connections": args.connections, "batch": args.batch, "arms": intake_arms,
                   **{f"{arm}_over_key": ratios(intake_arms, "intake", intake_metrics, arm)
                      for arm in arms if arm != "key"}},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def _arms(results: dict) -> list[str]:
    return list(results["recommend"]["arms"])


def markdown(results: dict) -> list[str]:
    rec, intake, arms = results["recommend"], results["intake"], _arms(results)
    lines = [f"`GET /recommend` open loop at {rec['rate']:.0f} req/s ({rec['cold_share']:.0%} cold), "
             f"{results['rounds']} rounds of {results['duration_s']:.0f} s per arm, the arms' order rotating:", "",
             "| arm | p50 ms | p99 ms (median) | p99 of each run | API CPU ms / request | Redis CPU ms / request "
             "| errors |", "|---|---:|---:|---|---:|---:|---:|"]
    for arm in arms:
        r = rec["arms"][arm]
        each = " / ".join(f"{v:.1f}" for v in r["p99_ms_runs"])
        lines.append(f"| `{arm}`: {results['arms'][arm]} | {r['p50_ms']:.2f} | {r['p99_ms']:.1f} | {each} | "
                     f"{r['api_cpu_ms_per_request']:.2f} | {r['redis_cpu_ms_per_request']:.3f} | {r['errors']} |")
    lines.append("")
    for arm in arms:
        if arm == "key":
            continue
        ratio = rec[f"{arm}_over_key"]
        lines.append(f"`{arm}` / `key`: p50 {ratio['p50_ms']:.2f}× (rounds {_spread(ratio['p50_ms_by_round'])}), "
                     f"p99 {ratio['p99_ms']:.2f}× (rounds {_spread(ratio['p99_ms_by_round'])}), API CPU per request "
                     f"{ratio['api_cpu_ms_per_request']:.2f}× (rounds "
                     f"{_spread(ratio['api_cpu_ms_per_request_by_round'])}).")
    lines += ["", f"`POST /events` closed loop, {intake['connections']} connections, batches of {intake['batch']} "
                  "views of one shopper (the same bodies in every arm):", "",
              "| arm | events/s (median) | events/s of each run | batch p50 ms | batch p99 ms | API CPU ms / batch "
              "| errors |", "|---|---:|---|---:|---:|---:|---:|"]
    for arm in arms:
        r = intake["arms"][arm]
        each = " / ".join(f"{v:,.0f}" for v in r["events_per_s_runs"])
        lines.append(f"| `{arm}` | {r['events_per_s']:,.0f} | {each} | {r['p50_ms']:.2f} | {r['p99_ms']:.1f} | "
                     f"{r['api_cpu_ms_per_request']:.2f} | {r['errors']} |")
    lines.append("")
    for arm in arms:
        if arm == "key":
            continue
        ratio = intake[f"{arm}_over_key"]
        lines.append(f"`{arm}` / `key`: events/s {ratio['events_per_s']:.2f}× (rounds "
                     f"{_spread(ratio['events_per_s_by_round'])}), batch p50 {ratio['p50_ms']:.2f}×, p99 "
                     f"{ratio['p99_ms']:.2f}×, API CPU per batch {ratio['api_cpu_ms_per_request']:.2f}×.")
    loads = [v for part in ("recommend", "intake") for arm in arms
             for v in results[part]["arms"][arm]["load_avg_1m_runs"]]
    lines += ["", f"1-minute load average at the runs' starts: {min(loads):.1f}–{max(loads):.1f} on "
                  f"{results['machine']['cpus']} cores (the bench's own servers and load generator included)."]
    outages = results.get("rate_limit_outages_logged") or {}
    if any(outages.values()):
        lines.append("Times an API could not count its rate limits and served uncounted for a while (its log): "
                     + ", ".join(f"`{arm}` {n:,}" for arm, n in outages.items()) + ".")
    return lines


COLOURS = {"token": "tab:red", "key": "tab:blue", "token_local": "tab:orange"}


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = _arms(results)
    width = len(arms) + 1
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.6))

    def bars(ax, groups: list[tuple[str, dict, str]]) -> None:
        for g, (_, data, metric) in enumerate(groups):
            for j, arm in enumerate(arms):
                x = g * width + j
                ax.bar(x, data[arm][metric], color=COLOURS.get(arm, "grey"), alpha=0.5, label=arm if g == 0 else None)
                runs = data[arm][f"{metric}_runs"]
                ax.scatter([x] * len(runs), runs, color="k", s=10, zorder=3)
        ax.set_xticks([g * width + (len(arms) - 1) / 2 for g in range(len(groups))], [n for n, _, _ in groups])

    rec, intake = results["recommend"]["arms"], results["intake"]["arms"]
    bars(left, [("p50", rec, "p50_ms"), ("p99", rec, "p99_ms")])
    left.set_ylabel("latency from due time (ms)")
    left.set_title(f"GET /recommend, {results['recommend']['rate']:.0f} req/s open loop", fontsize=10)
    left.legend(fontsize=8)
    bars(middle, [("events/s", intake, "events_per_s")])
    middle.set_title(f"POST /events: {results['intake']['connections']} connections, "
                     f"batches of {results['intake']['batch']}", fontsize=10)
    bars(right, [("recommend", rec, "api_cpu_ms_per_request"), ("events (per batch)", intake,
                                                                 "api_cpu_ms_per_request")])
    right.set_ylabel("CPU ms per request (API server + workers)")
    right.set_title("CPU the API spends per request", fontsize=10)
    fig.suptitle("token: bearer JWT + rate limits in Redis; key: API key naming the subject, no limits; token_local: "
                 "JWT + limits in process. Bars: median; dots: each round", fontsize=9)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each runs every arm, the order rotating)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per arm per part per round")
    parser.add_argument("--warmup", type=float, default=3.0, help="open-loop seconds before each /recommend run")
    parser.add_argument("--rate", type=float, default=200.0, help="/recommend req/s (open loop)")
    parser.add_argument("--connections", type=int, default=8, help="POST /events senders (closed loop)")
    parser.add_argument("--batch", type=int, default=10, help="views per POST /events batch (one shopper)")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds between runs")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="which arms (`key` is needed)")
    parser.add_argument("--quick", action="store_true",
                        help="rounds of 5 s (a smoke test; results printed, not written)")
    args = parser.parse_args()
    if "key" not in args.arms:
        parser.error("the `key` arm is the baseline every ratio is taken against")
    if args.quick:
        args.duration, args.warmup = 5.0, 1.0
    results = measure(args)
    text = "\n".join(markdown(results))
    if args.quick:
        print(json.dumps(results, indent=1))
        print(text)
        return
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    plot(results)
    print(text)
    print(f"wrote {RESULTS} and {PLOT} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
