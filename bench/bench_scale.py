"""`make bench-scale`: how the nightly pipeline's cost grows with the shop.

    .venv/bin/python bench/bench_scale.py [--events 1000000 3000000 10000000] [--out bench/results/scale.json]

Each size is a seeded synthetic shop (`shoprank synth`) whose users and items grow the way a real
shop's do: users with the events (a steady share of returning shoppers: events / 40), the catalogue
with the square root of the events (Heaps' law, 30 * sqrt(events)). The nightly steps then run one
after another, exactly as the pipeline's components call them (gate, features, training set, train,
evaluate, push), each in its own process so its wall time and peak RSS are its own. The search
steps are left out: they are measured by `make bench-search`.

Writes {"runs": [{"events", "users", "items", "total_s", "peak_rss_gb", "steps": {step: seconds},
"peak_rss_gb_by_step", "rows_per_s"}], "exponent": {step | "total": e}} and a log-log plot; the
exponent is the least-squares slope of log(time) against log(events) over the sizes run.

A step that fails (an exception, or killed for going past `--max-rss-gb`, which keeps a shared machine
out of its OOM killer) ends its size: the run keeps the steps that completed and gains
"failed": {"step", "error", "seconds", "peak_rss_gb"}, its "total_s" is null, and the bench goes on
to the next size. Exponents are fitted over the sizes where the step (for "total": every step) completed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# the private stage (stage .. pseudonymise), then the pipeline's steps; "features" is the first four of the
# pipeline (receive, snapshots, neighbours, materialise) in one process, as the step the figures name
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")  # a traceback's last line
STEPS = ["stage", "validate", "publish", "pseudonymise", "features", "training_set", "train", "evaluate", "push"]
START, DAYS = "2024-01-01", 56
END = "2024-02-26"  # START + DAYS


def shop_sizes(events: int) -> dict[str, int]:
    return {"n_events": events, "n_users": max(1000, events // 40), "n_items": int(30 * math.sqrt(events))}


def run_step(step: str, work: Path) -> dict:
    """One step in this process (the child): its result, wall seconds and peak RSS."""
    from shoprank.features.crossing import latest_crossing
    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.models.train import TrainConfig
    from shoprank.orchestration import private, steps
    from shoprank.settings import load_settings
    from shoprank.storage import open_for

    started = time.perf_counter()
    if step == "stage":
        out = private.stage("canonical", str(work / "shop"), START, END, progress=False)
    elif step == "validate":
        out = private.validate(START, END)
    elif step == "publish":
        out = private.publish(START, END)
    elif step == "pseudonymise":
        out = private.pseudonymise_night(START, END, n_snapshots=6, source="canonical")
    elif step == "features":
        crossing = latest_crossing(open_for(load_settings()), "nightly")
        out = {k: str(v) for k, v in steps.features_from_crossing(crossing, work).items()}
    elif step == "training_set":
        config = TrainingSetConfig(max_users_per_cutoff=int(os.environ.get("BENCH_MAX_USERS", 2000)))
        out = steps.training_set(work / "crossing.json", work / "dataset", config,
                                 interactions_path=work / "interactions.parquet", snapshots_dir=work / "snapshots",
                                 impressions_path=work / "impressions.parquet")
    elif step == "train":
        epochs = int(os.environ.get("BENCH_EPOCHS", 6))
        out = steps.train(work / "dataset", work / "model", work / "report", TrainConfig(epochs=epochs, seed=0))
    elif step == "evaluate":
        out = steps.evaluate(work / "model", work / "dataset", interactions_path=work / "interactions.parquet")
        out = {"blessed": out.blessed, "candidate": out.candidate}
    elif step == "push":
        out = steps.push(work / "model", {"data_interval": [START, END], "source": "synthetic"})
    else:
        raise ValueError(f"unknown step {step!r}: expected one of {STEPS}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"step": step, "seconds": time.perf_counter() - started, "peak_rss_gb": peak_kb / 2**20,
            "result": json.loads(json.dumps(out, default=str))}


def code_version() -> str | None:
    """The checkout a size ran on: the commit, "+dirty" where the package had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "shoprank"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def shop_env(work: Path) -> dict[str, str]:
    """The environment a size's step processes run in: the size's own home, key and blessing rules."""
    return {**os.environ, "SHOPRANK_HOME": str(work / "home"), "SHOPRANK_PSEUDONYM_KEY": "bench-scale",
            "SHOPRANK_MODEL_SERVER_URL": "http://127.0.0.1:9", "SHOPRANK_BLESSING_RULES": str(work / "rules.toml")}


def one_size(events: int, scratch: Path, max_rss_gb: float | None = None, steps: list[str] = STEPS) -> dict:
    from shoprank.data.sources.synthetic import write_synthetic

    work = scratch / f"events-{events}"
    sizes = shop_sizes(events)
    env = shop_env(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "rules.toml").write_text("min_metric = 0.0\nmin_auc = 0.0\nmin_gain_over_baseline = -1.0\n")
    began = time.perf_counter()
    write_synthetic(work / "shop", start=START, days=DAYS, **sizes)
    synth_s = time.perf_counter() - began
    run = {"events": events, "users": sizes["n_users"], "items": sizes["n_items"], "synth_s": synth_s,
           "code": code_version(), "steps": {}, "peak_rss_gb_by_step": {}, "rows_per_s": {}}
    for step in steps:
        report = run_child(step, work, env, max_rss_gb)
        if "error" in report:
            run["failed"] = {"step": step, "error": report["error"], "seconds": report["seconds"],
                             "peak_rss_gb": report["peak_rss_gb"]}
            print(f"  {events:>11,} events  {step:<13} FAILED after {report['seconds']:.1f} s at "
                  f"{report['peak_rss_gb']:.2f} GB: {report['error'][-300:]}", flush=True)
            break
        run["steps"][step] = report["seconds"]
        run["peak_rss_gb_by_step"][step] = report["peak_rss_gb"]
        run["rows_per_s"][step] = events / report["seconds"]
        print(f"  {events:>11,} events  {step:<13} {report['seconds']:8.1f} s  {report['peak_rss_gb']:5.2f} GB",
              flush=True)
    run["total_s"] = None if "failed" in run else sum(run["steps"].values())
    run["peak_rss_gb"] = max([*run["peak_rss_gb_by_step"].values(), run.get("failed", {}).get("peak_rss_gb", 0.0)])
    return run


def run_child(step: str, work: Path, env: dict, max_rss_gb: float | None) -> dict:
    """One step in a child process: its report, or {"error", "seconds", "peak_rss_gb"} where it failed
    (the peak from the kernel's accounting of that child, so an OOM kill still has one)."""
    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, __file__, "--step", step, "--work", str(work)], env=env,
                                 stdout=out, stderr=err, text=True)
        killed = None
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if max_rss_gb:
                try:
                    tree = [psutil.Process(child.pid)]
                    tree += tree[0].children(recursive=True)
                    rss = sum(p.memory_info().rss for p in tree) / 2**30
                except psutil.Error:
                    rss = 0.0
                if rss > max_rss_gb and killed is None:
                    killed = (f"killed by the bench: its process tree held {rss:.1f} GB, "
                              f"past --max-rss-gb {max_rss_gb:g}")
                    for p in reversed(tree):
                        try:
                            p.kill()
                        except psutil.Error:
                            pass
            time.sleep(0.5)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode == 0 and killed is None:
        return json.loads(stdout.strip().splitlines()[-1])
    code = child.returncode
    why = killed or (f"killed by signal {-code} (SIGKILL: likely the kernel's OOM killer)" if code == -9
                     else f"killed by signal {-code}" if code < 0 else f"exit status {code}")
    return {"error": failure(why, stderr), "seconds": seconds, "peak_rss_gb": usage.ru_maxrss / 2**20}


def failure(why: str, stderr: str) -> str:
    """What a failed step said: a first line with how it ended and its exception, then the step's last
    progress line before the traceback and the traceback's tail."""
    lines = stderr.strip().splitlines()
    raised = [line for line in lines if EXCEPTION.match(line)]
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), 0)
    before = [line for line in lines[:start] if line.strip()][-1:]
    return "\n".join([f"{why}: {raised[-1]}" if raised else why, *before, *lines[-15:]])


def exponents(runs: list[dict]) -> dict[str, float]:
    if len(runs) < 2:
        return {}
    out = {}
    for step in [*STEPS, "total"]:
        points = [(r["events"], r["total_s"] if step == "total" else r["steps"].get(step)) for r in runs]
        points = [(e, t) for e, t in points if t]
        if len(points) >= 2:
            out[step] = float(np.polyfit(np.log([e for e, _ in points]), np.log([t for _, t in points]), 1)[0])
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for step in [*STEPS, "total"]:
        points = [(r["events"], r["total_s"] if step == "total" else r["steps"].get(step)) for r in runs]
        events = [e for e, t in points if t]
        times = [t for _, t in points if t]
        slope = results["exponent"].get(step)
        ax.plot(events, times, marker="o", lw=2.5 if step == "total" else 1.2,
                label=f"{step} (exponent {slope:.2f})" if slope is not None else step)
    for run in runs:
        if run.get("failed"):
            f = run["failed"]
            ax.plot([run["events"]], [f["seconds"]], marker="x", ms=10, mew=2, color="red", ls="none",
                    label=f"{f['step']} failed at {run['events']:,} events")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("seconds")
    ax.set_title("nightly pipeline cost against shop size (2 cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--scratch", type=Path, default=ROOT / ".shoprank" / "bench-scale")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument("--max-rss-gb", type=float, default=16.0,
                        help="kill a step whose process tree holds more (0: no limit); it is recorded as failed")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.work)))
        return
    runs = []
    for events in sorted(args.events):
        print(f"shop of {events:,} events: {shop_sizes(events)}", flush=True)
        runs.append(one_size(events, args.scratch, args.max_rss_gb or None))
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                   "growth": "users = events / 40; items = 30 * sqrt(events) (Heaps' law); 56 days",
                   "runs": runs, "exponent": exponents(runs)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))  # after every size: a long run keeps what it measured
        if len(runs) > 1:
            plot(results, args.out.with_suffix(".png"))
    print(json.dumps(results["exponent"], indent=2))


if __name__ == "__main__":
    main()
