"""The online API of two checkouts on the same stack, interleaved: is `/recommend` as fast as before?

A structural change to the API (how routes, the shopper's context and the served model are built)
must not cost latency. This starts the API of this checkout and of a baseline checkout (its own
virtual environment, e.g. a `git worktree` of the previous release with `uv sync`), in turn, against
the same model server, feature store and requests as `make bench-serving` (each shopper's bearer
token), and measures each open-loop at a fixed rate, `--repeats` times interleaved, so a slow minute
of the machine hits both. Both checkouts must speak the authenticated API (`GET /recommend` for the
token's shopper, /readyz on `--internal-port`): a baseline from before it cannot serve these requests.

    python -m bench.bench_api_ab --baseline ../base            # needs `make demo` first
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from bench.bench_serving import ROOT, Stack, combine, log, open_loop, sample_paths, scratch_stack
from bench.processes import wait_ready

RESULTS = ROOT / "bench" / "results" / "api_ab.json"


def start_api(stack: Stack, checkout: Path, online_store: str) -> None:
    """The API of `checkout`, run by its own environment's Python from its own folder."""
    stack.stop("api")
    logfile = open(stack.work / "api.log", "ab")  # noqa: SIM115 - owned by the child's lifetime
    stack.procs["api"] = subprocess.Popen(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "shoprank.cli", "serve-api", "--port",
         str(stack.api_port), "--internal-port", str(stack.internal_port), "--workers", "2"], cwd=checkout,
        env=stack.env(online_store), stdout=logfile, stderr=subprocess.STDOUT)
    wait_ready(f"http://127.0.0.1:{stack.internal_port}/readyz", stack.work / "api.log")


def speaks_authenticated_api(checkout: Path) -> bool:
    """Whether the checkout's API verifies shopper tokens and has an internal port (its CLI says so)."""
    shown = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "-m", "shoprank.cli", "serve-api", "--help"],
                           cwd=checkout, capture_output=True, text=True, timeout=120)
    return "--internal-port" in shown.stdout and (checkout / "shoprank" / "identity" / "tokens.py").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (with its .venv)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    arms = {"baseline": args.baseline.resolve(), "current": ROOT}
    for name, checkout in arms.items():
        if not (checkout / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{name}: no .venv in {checkout} (run `uv sync --frozen --extra dev` there)")
        if not speaks_authenticated_api(checkout):
            raise SystemExit(f"{name}: {checkout} predates the authenticated API (no shopper tokens, no "
                             "--internal-port): it cannot serve the same requests; compare against a checkout "
                             "that has them")
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    with scratch_stack("api-ab") as (stack, _):
        known, make_paths = sample_paths(stack)
        paths = make_paths()
        stack.start_model_server(None)
        for repeat in range(args.repeats):
            for name, checkout in arms.items():
                start_api(stack, checkout, stack.sqlite)
                summary = open_loop(stack, paths, args.rate, args.duration, args.warmup).summary()
                runs[name].append(summary)
                log(f"{name} run {repeat + 1}/{args.repeats}: p50 {summary['p50_ms']:.1f} ms, p99 "
                    f"{summary['p99_ms']:.1f} ms, {summary['errors']} errors")
    combined = {name: combine(r) for name, r in runs.items()}
    result = {"rate": args.rate, "duration_s": args.duration, "repeats": args.repeats, "online_store": "sqlite",
              "baseline": str(arms["baseline"]), "arms": combined,
              "p99_ratio": round(combined["current"]["p99_ms"] / combined["baseline"]["p99_ms"], 3),
              "p50_ratio": round(combined["current"]["p50_ms"] / combined["baseline"]["p50_ms"], 3)}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
