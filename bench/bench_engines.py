"""`make bench-engines`: the feature job's SQL on DuckDB and on Spark (local mode) against the pandas path.

    .venv/bin/python bench/bench_engines.py [--snapshots 6] [--repeats 3]
    .venv/bin/python bench/bench_engines.py --scale-work .shoprank/bench-scale/events-3000000 --end 2024-02-26

Input: the demo's pseudonymised interactions (`make demo` first) and its catalogue, or a
`make bench-scale` size's (`--scale-work`: its interactions artifact and its store's catalogue). Each engine
computes the same tables (item stats, user stats with their ranked lists, labels) at the same
snapshot times; pandas computes what it can of them (`item_snapshot`; of `user_snapshot` the same
counts and lists, timed without the co-occurrence and kNN lists it also builds, which the SQL job
does not). Each engine runs `--repeats` times, interleaved, each run in its own process; the median
wall time is reported, with the ratio to DuckDB's in the same run, and the peak RSS of the run's
process tree (Spark's JVM included; DuckDB runs with a 4 GB memory limit and spills past it).
Spark runs `local[2]` (this machine's cores), session start included once per repeat, as a
nightly would pay it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "engines.json"
TABLES = ("item_stats", "user_stats")


def engine_inputs(scratch: Path, scale_work: Path | None = None) -> tuple[Path, Path, int]:
    """The inputs as the engines read them (Spark cannot read nanosecond timestamps: microseconds)."""

    from shoprank.features.crossing import latest_crossing, read_crossing, read_table
    from shoprank.settings import load_settings
    from shoprank.storage import open_for, open_store

    # the night's crossing: the demo's, or bench-scale's at its biggest size
    store = open_for(load_settings()) if scale_work is None else open_store(str(scale_work / "home" / "store"))
    crossing = read_crossing(store, latest_crossing(store, "nightly"))
    interactions = read_table(store, crossing, "interactions")
    interactions["event_time"] = interactions["event_time"].astype("datetime64[us, UTC]")
    interactions.to_parquet(scratch / "interactions.parquet", index=False)
    read_table(store, crossing, "catalogue").to_parquet(scratch / "items.parquet", index=False)
    return scratch / "interactions.parquet", scratch / "items.parquet", len(interactions)


def run_sql(engine_name: str, interactions: Path, items: Path, times, out: Path) -> float:
    from shoprank.features.engine.engines import DuckDbEngine, SparkEngine
    from shoprank.features.engine.job import run_feature_job

    began = time.perf_counter()
    engine = DuckDbEngine(memory_limit="4GB") if engine_name == "duckdb" else SparkEngine("local[2]")
    try:
        run_feature_job(engine, interactions, items, times, out, label_days=7, tables=TABLES)
    finally:
        engine.close()
    return time.perf_counter() - began


def run_pandas(interactions: Path, items: Path, times) -> float:
    import pandas as pd

    import tests.reference.compute as compute
    from shoprank.features.training_set import truth_sets

    began = time.perf_counter()
    frame, catalogue = pd.read_parquet(interactions), pd.read_parquet(items)
    empty = pd.DataFrame(index=pd.Index([], name="user_key"))
    real_cooc, real_knn = compute.cooccurrence_candidates, compute.knn_candidates
    compute.cooccurrence_candidates = lambda *a, **k: empty.assign(user_cooc_items=None, user_cooc_scores=None)
    compute.knn_candidates = lambda *a, **k: empty.assign(user_knn_items=None, user_knn_scores=None)
    try:
        for at in times:
            compute.item_snapshot(frame, catalogue, at)
            compute.user_snapshot(frame, catalogue, at)
            if at + pd.Timedelta(days=7) <= max(times):
                truth_sets(frame, at, 7)
    finally:
        compute.cooccurrence_candidates, compute.knn_candidates = real_cooc, real_knn
    return time.perf_counter() - began


ENGINES = ("duckdb", "spark_local2", "pandas")


def run_engine(name: str, interactions: Path, items: Path, times, out: Path) -> float:
    if name == "pandas":
        return run_pandas(interactions, items, times)
    return run_sql(name.split("_")[0], interactions, items, times, out)


def run_measured(name: str, interactions: Path, items: Path, args: argparse.Namespace,
                 out: Path) -> tuple[float, float]:
    """One run in its own process: its wall seconds, and the peak RSS of its process tree (the Spark
    JVM included) sampled every 50 ms, so no engine is charged for another's leftovers."""
    import psutil

    report = out.with_suffix(".json")
    child = subprocess.Popen([sys.executable, __file__, "--one", name, "--inputs", str(interactions), str(items),
                              "--end", args.end, "--snapshots", str(args.snapshots), "--report", str(report),
                              "--work", str(out)])
    peak = 0
    while child.poll() is None:
        try:
            tree = [psutil.Process(child.pid)]
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            break
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, total)
        time.sleep(0.05)
    if child.wait() != 0:
        raise RuntimeError(f"{name} failed (exit {child.returncode})")
    return json.loads(report.read_text())["seconds"], peak / 2**30


def main() -> None:
    import pandas as pd

    from shoprank.features.snapshots import snapshot_times

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end", default="2001-02-28")
    parser.add_argument("--scale-work", type=Path, help="a bench-scale size's work folder instead of the demo")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    times = snapshot_times(pd.Timestamp(args.end, tz="UTC"), args.snapshots)
    if args.one:  # the child: one run, its seconds to --report
        seconds = run_engine(args.one, args.inputs[0], args.inputs[1], times, args.work)
        args.report.write_text(json.dumps({"seconds": seconds}))
        return
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        scratch = Path(tmp)
        interactions, items, n_events = engine_inputs(scratch, args.scale_work)
        runs: dict[str, list[float]] = {name: [] for name in ENGINES}
        peaks: dict[str, list[float]] = {name: [] for name in ENGINES}
        for repeat in range(args.repeats):
            for name in ENGINES:
                seconds, peak = run_measured(name, interactions, items, args, scratch / f"{name}-{repeat}")
                runs[name].append(seconds)
                peaks[name].append(peak)
                print(f"{name:<13} run {repeat + 1}: {seconds:6.1f} s  peak {peak:5.2f} GB", flush=True)
    median = {name: statistics.median(v) for name, v in runs.items()}
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "input": {"source": str(args.scale_work or "demo (Ta Feng)"),
                         "events": n_events, "snapshots": [str(t) for t in times], "tables": [*TABLES, "labels"]},
               "seconds": runs, "median_s": median,
               "ratio_to_duckdb": {name: median[name] / median["duckdb"] for name in median},
               "peak_rss_gb": peaks, "max_peak_rss_gb": {name: max(v) for name, v in peaks.items()}}
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({"median_s": median, "ratio_to_duckdb": results["ratio_to_duckdb"],
                      "max_peak_rss_gb": results["max_peak_rss_gb"]}, indent=2))


if __name__ == "__main__":
    main()
