"""What does the validation gate cost? Rows per second and peak memory of the gate versus the same
checks written by hand in pandas/pyarrow, on synthetic canonical batches of 1M and 10M events.

    .venv/bin/python bench/bench_validation.py [--sizes 1000000 10000000] [--data-dir /tmp/shoprank-bench]

Each variant runs in its own subprocess (a fresh interpreter), which reports its wall time after
imports and its own peak RSS (VmHWM from /proc/self/status, `ru_maxrss` elsewhere), so one
variant's memory never hides in another's. The batch is generated once per size with `write_synthetic` (about 1 GB of
disk for 10M events) and reused by later runs.

The hand-written variant is an honest competitor, not a strawman: it reads the same files, per
date partition, does every check the gate does (required fields, value set, ranges, interval and
future, catalogue keys, references to items and users, duplicates, volume per day, the drift
histograms) with vectorised pyarrow/pandas, and prints a short summary. What it lacks is what the
gate adds: Great Expectations' expectation machinery, offending-row provenance, Data Docs HTML and
the report files. The goal is a gate that costs at most 3x the hand-written checks.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "validation.json"
START, END = "2024-01-01", "2024-01-29"
EVENT_TYPES = ["view", "cart", "purchase", "search"]


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM is per address space, so unlike ru_maxrss (which
    Linux carries over from the parent through fork/exec) it cannot report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def ensure_batch(data_dir: Path, n_events: int) -> Path:
    """A synthetic canonical batch of n_events (28 days, 5k users, 2k items), generated once."""
    out = data_dir / f"synthetic-{n_events}"
    marker = out / ".complete"
    if marker.exists():
        return out
    sys.path.insert(0, str(ROOT))
    from shoprank.data.sources.synthetic import write_synthetic

    print(f"generating {n_events:,} synthetic events in {out} ...", flush=True)
    write_synthetic(out, n_events=n_events, n_users=5_000, n_items=2_000, days=28, progress=True)
    marker.touch()
    return out


# ---- the variants, run in child processes --------------------------------------------------------

def run_gate_variant(batch: Path) -> dict:
    import pandas as pd

    from shoprank.validation import run_gate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_gate(batch, interval_start=pd.Timestamp(START), interval_end=pd.Timestamp(END),
                          state_dir=Path(tmp) / "state", reports_dir=Path(tmp) / "reports")
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "passed": result.passed, "rows": result.counts["events"]}


def run_handwritten_variant(batch: Path) -> dict:
    """The same checks, by hand: pyarrow compute per date partition, pandas for group-bys."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    start, end = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=5)
    problems: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        problems[name] = problems.get(name, 0) + int(n)

    items = pq.read_table(batch / "items")
    users = pq.read_table(batch / "users")
    count("items.item_id.not_null", items["item_id"].null_count)
    count("items.item_id.unique", items.num_rows - pc.count_distinct(items["item_id"]).as_py())
    count("items.category.not_null", items["category"].null_count)
    count("items.price.positive", pc.sum(pc.less_equal(items["price"], 0)).as_py() or 0)
    count("items.brand.not_null", items["brand"].null_count)
    count("users.user_id.not_null", users["user_id"].null_count)
    count("users.user_id.unique", users.num_rows - pc.count_distinct(users["user_id"]).as_py())
    item_ids, user_ids = items["item_id"].combine_chunks(), users["user_id"].combine_chunks()
    category_of = pd.Series(items["category"].to_pandas().to_numpy(), index=items["item_id"].to_pandas())
    categories: dict[str, int] = {}
    day_counts: dict[str, int] = {}
    type_counts: dict[str, int] = {}
    bins = np.linspace(-3, 8, 1101)
    price_hist = np.zeros(1100, dtype=np.int64)
    user_day_hist = np.zeros(16, dtype=np.int64)
    n_events = 0
    partitions = sorted(p for p in (batch / "events").iterdir() if p.is_dir())
    for part in partitions:
        t = ds.dataset(part, format="parquet").to_table()
        n_events += t.num_rows
        for col in ("event_time", "user_id", "event_type"):
            count(f"events.{col}.not_null", t[col].null_count)
        etype, item, price, qty, times = t["event_type"], t["item_id"], t["price"], t["quantity"], t["event_time"]
        count("events.item_id.not_null", pc.sum(pc.and_(pc.is_null(item), pc.not_equal(etype, "search"))).as_py() or 0)
        count("events.event_type.in_set", pc.sum(pc.invert(pc.is_in(etype, pa.array(EVENT_TYPES)))).as_py() or 0)
        count("events.price.positive", pc.sum(pc.less_equal(price, 0)).as_py() or 0)
        count("events.quantity.positive", pc.sum(pc.less_equal(qty, 0)).as_py() or 0)
        outside = pc.or_(pc.less(times, pa.scalar(start)), pc.greater_equal(times, pa.scalar(end)))
        count("events.event_time.in_interval", pc.sum(outside).as_py() or 0)
        count("events.event_time.not_future", pc.sum(pc.greater(times, pa.scalar(now))).as_py() or 0)
        unknown_item = pc.and_(pc.is_valid(item), pc.invert(pc.is_in(item, item_ids)))
        count("events.item_id.known", pc.sum(unknown_item).as_py() or 0)
        count("events.user_id.known", pc.sum(pc.invert(pc.is_in(t["user_id"], user_ids))).as_py() or 0)
        frame = t.select(["event_time", "user_id", "item_id", "event_type", "session_id", "price"]).to_pandas()
        count("events.duplicates", frame.duplicated(["event_time", "user_id", "item_id", "event_type",
                                                     "session_id"]).sum())
        day = frame["event_time"].dt.floor("D")
        for d, c in day.value_counts().items():
            day_counts[str(d.date())] = day_counts.get(str(d.date()), 0) + int(c)
        per_user_day = frame.groupby([frame["user_id"], day]).size().to_numpy()
        user_day_hist += np.bincount(np.minimum(np.ceil(np.log2(per_user_day)).astype(int), 15), minlength=16)
        for k, c in frame["event_type"].value_counts().items():
            type_counts[k] = type_counts.get(k, 0) + int(c)
        for k, c in frame["item_id"].map(category_of).value_counts().items():
            categories[k] = categories.get(k, 0) + int(c)
        p = frame["price"].to_numpy()
        price_hist += np.histogram(np.log10(p[p > 0]), bins=bins)[0]
        if any(problems.values()):  # fetch a few offending rows, as a report would
            _ = frame[frame["price"] <= 0].head(5)
    summary = "\n".join(f"{k}: {v}" for k, v in problems.items() if v)
    print(f"hand-written checks: {n_events:,} events, {len(day_counts)} days\n{summary}", file=sys.stderr)
    return {"seconds": time.perf_counter() - t0, "passed": not any(problems.values()), "rows": n_events}


def child(variant: str, batch: Path) -> None:
    sys.path.insert(0, str(ROOT))
    before = peak_rss_mb()
    import pandas  # noqa: F401  (imports are not what we measure)
    import pyarrow  # noqa: F401

    if variant == "gate":
        import shoprank.validation.gate  # noqa: F401
        import shoprank.validation.runner  # noqa: F401
    after_imports = peak_rss_mb()
    out = run_gate_variant(batch) if variant == "gate" else run_handwritten_variant(batch)
    out.update(peak_rss_mb=peak_rss_mb(), rss_after_imports_mb=after_imports, rss_at_start_mb=before)
    print("RESULT " + json.dumps(out), flush=True)


def measure(variant: str, batch: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", variant, "--batch", str(batch)],
                          capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{variant} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["rows_per_s"] = result["rows"] / result["seconds"]
    result["peak_rss_above_imports_mb"] = result["peak_rss_mb"] - result["rss_after_imports_mb"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "shoprank-bench")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the fastest is kept")
    parser.add_argument("--child", choices=["gate", "handwritten"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.batch)
        return 0

    rows = []
    for size in args.sizes:
        batch = ensure_batch(args.data_dir, size)
        entry: dict = {"events": size}
        for variant in ("handwritten", "gate"):
            runs = [measure(variant, batch) for _ in range(args.repeat)]
            entry[variant] = min(runs, key=lambda r: r["seconds"])
            print(f"{size:>12,} {variant:<12} {entry[variant]['seconds']:7.2f} s "
                  f"{entry[variant]['rows_per_s']:>12,.0f} rows/s  peak RSS {entry[variant]['peak_rss_mb']:7.0f} MB",
                  flush=True)
        entry["time_ratio"] = entry["gate"]["seconds"] / entry["handwritten"]["seconds"]
        entry["peak_rss_ratio"] = entry["gate"]["peak_rss_mb"] / entry["handwritten"]["peak_rss_mb"]
        rows.append(entry)

    print()
    print(f"{'events':>12} | {'hand-written rows/s':>19} {'peak MB':>8} | {'gate rows/s':>12} {'peak MB':>8} | "
          f"{'time x':>6} {'mem x':>6}")
    print("-" * 86)
    for e in rows:
        h, g = e["handwritten"], e["gate"]
        print(f"{e['events']:>12,} | {h['rows_per_s']:>19,.0f} {h['peak_rss_mb']:>8.0f} | {g['rows_per_s']:>12,.0f} "
              f"{g['peak_rss_mb']:>8.0f} | {e['time_ratio']:>6.2f} {e['peak_rss_ratio']:>6.2f}")
    report = {
        "benchmark": "validation gate vs hand-written pandas/pyarrow checks (synthetic canonical batches)",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "goal": "gate time <= 3x hand-written",
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.output)
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
