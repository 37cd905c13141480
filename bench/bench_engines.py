"""`make bench-engines`: the feature job on DuckDB and on Spark `local[2]`, and its approximate kNN on Ta Feng.

    .venv/bin/python bench/bench_engines.py [--events 1000000 10000000] [--repeats 1] [--max-minutes 40]
    .venv/bin/python bench/bench_engines.py --skip-scale          # the Ta Feng part only
    .venv/bin/python bench/bench_engines.py --skip-tafeng         # the engines only

Part 1, the engines: the whole feature job as the nightly runs it (`run_feature_job` with every table:
item_stats and user_stats, with the co-occurrence and the capped user-kNN lists, at each of the
crossing's 6 weekly snapshots, item_neighbours at the last; no labels, which the nightly does not
write) on DuckDB (in process, 4 GB memory limit, spilling past it) and on Spark `local[2]`, over a
`make bench-scale` size's pseudonymised interactions and catalogue. A size's inputs are taken from
`<scratch>/events-<n>` (bench-scale's work folder: its store's newest nightly crossing); where there
is none, the size is made the way bench-scale makes it (its seeded synthetic shop, then its private
stage: stage, validate, publish, pseudonymise) without the rest of the nightly. Each run is its own
process; its wall time includes the process's start and the engine's (Spark's session), its peak
RSS and CPU seconds are those of its process tree sampled every 100 ms (Spark's JVM included), with
the machine's load average over the run (a shared machine's other work shows there), and the job's
progress callback gives the seconds and rows of each table at each snapshot. A run past
`--max-minutes` is stopped and what it completed is recorded. The exponent is the slope of
log(seconds) against log(events) between the sizes (1: linear); at the last snapshot the two
engines' user_stats, item_stats and item_neighbours are compared row by row.

Part 2, Ta Feng (all 817,741 events, as `tests/features/test_engine.py` maps them to interactions),
at one snapshot, 2001-02-15 (its 120-day lookback holds nearly all of the data): the job's user_stats
and item_stats on DuckDB with the user-kNN exact (`knn_cap` None) and capped per item (1000, 200),
each timed, and the recall@50 of each capped `user_knn_items` list against the exact one; then the
pandas reference (`tests/reference/compute.py`, exact kNN) on the same data and time, against the
exact and the production-capped SQL runs, and the SQL's exact lists against pandas'.

Writes `bench/results/engines.json` (after every run, so a long bench keeps what it measured) and a
log-log plot of seconds against events per engine, `bench/results/engines.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
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
SCRATCH = ROOT / ".shoprank" / "bench-scale"
# name: (engine, DuckDB memory limit). 4 GB is the setting's default (`feature_engine_memory`); 8 GB is
# the same job where 4 GB is not enough
ENGINE_RUNS = {"duckdb": ("duckdb", "4GB"), "duckdb_8gb": ("duckdb", "8GB"), "spark_local2": ("spark", None)}
ENGINES = tuple(ENGINE_RUNS)
SPARK_MASTER = "local[2]"
PRIVATE_STEPS = ("stage", "validate", "publish", "pseudonymise")  # bench-scale's private stage
TAFENG_AT = "2001-02-15"
KNN_CAPS = (200, 1000)
SAMPLE_S = 0.1


# -- inputs --------------------------------------------------------------------------------------------


def _write_microseconds(data: bytes, path: Path) -> None:
    """The crossing's table as a parquet file the engines read (Spark cannot read nanosecond timestamps)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    fields = [pa.field(f.name, pa.timestamp("us", f.type.tz)) if pa.types.is_timestamp(f.type) else f
              for f in table.schema]
    tmp = path.with_suffix(".tmp")
    pq.write_table(table.cast(pa.schema(fields), safe=False), tmp)
    tmp.replace(path)


def scale_inputs(events: int, scratch: Path) -> dict:
    """A bench-scale size's pseudonymised interactions and catalogue as parquet files, with the
    crossing's snapshot times; made (synthetic shop, private stage) where the size has no crossing."""
    from bench import bench_scale
    from shoprank.features.crossing import CrossingError, latest_crossing, read_crossing, table_bytes
    from shoprank.storage import open_store

    work = scratch / f"events-{events}"
    folder = work / "engine-input"
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    store_dir = work / "home" / "store"
    try:
        manifest = latest_crossing(open_store(str(store_dir)), "nightly")
    except (CrossingError, OSError):
        manifest = None
    if manifest is None:
        from shoprank.data.sources.synthetic import write_synthetic

        sizes = bench_scale.shop_sizes(events)
        print(f"making the {events:,}-event shop in {work} (bench-scale's synthetic shop and private stage)",
              flush=True)
        work.mkdir(parents=True, exist_ok=True)
        (work / "rules.toml").write_text("min_metric = 0.0\nmin_auc = 0.0\nmin_gain_over_baseline = -1.0\n")
        write_synthetic(work / "shop", start=bench_scale.START, days=bench_scale.DAYS, progress=False, **sizes)
        env = {**os.environ, "SHOPRANK_HOME": str(work / "home"), "SHOPRANK_PSEUDONYM_KEY": "bench-scale",
               "SHOPRANK_MODEL_SERVER_URL": "http://127.0.0.1:9", "SHOPRANK_BLESSING_RULES": str(work / "rules.toml")}
        for step in PRIVATE_STEPS:
            done = subprocess.run([sys.executable, bench_scale.__file__, "--step", step, "--work", str(work)],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench-scale step {step} at {events:,} events failed:\n{done.stderr[-4000:]}")
            print(f"  {step:<13} {json.loads(done.stdout.strip().splitlines()[-1])['seconds']:7.1f} s", flush=True)
        manifest = latest_crossing(open_store(str(store_dir)), "nightly")
    store = open_store(str(store_dir))
    crossing = read_crossing(store, manifest)
    folder.mkdir(parents=True, exist_ok=True)
    _write_microseconds(table_bytes(store, crossing, "interactions"), folder / "interactions.parquet")
    _write_microseconds(table_bytes(store, crossing, "catalogue"), folder / "items.parquet")
    sizes = bench_scale.shop_sizes(events)
    meta = {"source": str(work.relative_to(ROOT)) if work.is_relative_to(ROOT) else str(work),
            "events_requested": events, "events": crossing.tables["interactions"]["rows"],
            "users": sizes["n_users"], "items": sizes["n_items"],
            "snapshots": [str(t) for t in crossing.snapshot_times],
            "interactions": str(folder / "interactions.parquet"), "catalogue": str(folder / "items.parquet")}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def tafeng_inputs(scratch: Path) -> dict:
    """All of Ta Feng as pseudonymised-shaped interactions (the columns the job reads) and its catalogue."""
    import pandas as pd

    folder = scratch / "tafeng"
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    from shoprank.data.sources import open_source
    from tests.conftest import TAFENG_ZIP

    source = open_source("tafeng", TAFENG_ZIP)
    events = pd.concat(source.events(), ignore_index=True)
    interactions = pd.DataFrame({"user_key": events["user_id"].astype(str), "item_id": events["item_id"].astype(str),
                                 "event_type": events["event_type"],
                                 "event_time": events["event_time"].astype("datetime64[us, UTC]"),
                                 "price": events["price"].astype("float64"),
                                 "quantity": events["quantity"].astype("int64")})
    folder.mkdir(parents=True, exist_ok=True)
    interactions.to_parquet(folder / "interactions.parquet", index=False)
    source.items()[["item_id", "category", "price"]].to_parquet(folder / "items.parquet", index=False)
    meta = {"source": "Ta Feng (all events)", "events": len(interactions),
            "users": int(interactions["user_key"].nunique()), "items": int(interactions["item_id"].nunique()),
            "interactions": str(folder / "interactions.parquet"), "catalogue": str(folder / "items.parquet")}
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


# -- one run in its own process --------------------------------------------------------------------------


def _times(values: list[str]):
    import pandas as pd

    return [pd.Timestamp(v).tz_convert("UTC") if pd.Timestamp(v).tzinfo else pd.Timestamp(v, tz="UTC")
            for v in values]


def child(task: dict) -> dict:
    """The child's work: `job` (the SQL feature job on one engine) or `pandas` (the reference)."""
    began = time.perf_counter()
    times = _times(task["times"])
    progress_path = Path(task["progress"])
    if task["kind"] == "pandas":
        import pandas as pd

        from tests.reference.compute import feature_snapshots

        interactions, items = pd.read_parquet(task["interactions"]), pd.read_parquet(task["catalogue"])
        users, item_rows = feature_snapshots(interactions, items, times)
        last = users[users["event_timestamp"] == max(times)]
        last.to_parquet(Path(task["out"]) / "user_stats_last.parquet", index=False)
        return {"seconds": time.perf_counter() - began,
                "rows": {"user_stats": len(users), "item_stats": len(item_rows)}}

    from shoprank.features.engine.engines import DuckDbEngine, SparkEngine
    from shoprank.features.engine.job import run_feature_job

    opened = time.perf_counter()
    engine = DuckDbEngine(memory_limit=task.get("memory_limit") or "4GB", spill_dir=task["spill"]) \
        if task["engine"] == "duckdb" else SparkEngine(SPARK_MASTER, conf={"spark.local.dir": task["spill"]})
    session_s = time.perf_counter() - opened
    if task["engine"] == "spark":  # its per-query warnings (a window without a partition) are in the report
        engine.spark.sparkContext.setLogLevel("ERROR")

    def progress(name, at, n, seconds) -> None:
        with progress_path.open("a") as f:
            f.write(json.dumps({"table": name, "at": str(at), "rows": n, "seconds": seconds}) + "\n")
        print(f"    {task['engine']:<13} {name:<16} {at:%Y-%m-%d}  {n:>10,} rows  {seconds:7.1f} s", flush=True)

    try:
        rows = run_feature_job(engine, task["interactions"], task["catalogue"], times, task["out"],
                               label_days=None, tables=task["tables"], knn_cap=task["knn_cap"], progress=progress)
    finally:
        engine.close()
    return {"seconds": time.perf_counter() - began, "imports_s": opened - began, "session_s": session_s,
            "rows": rows}


def _tree_sample(pid: int, cpu: dict[int, float]) -> tuple[int, int]:
    """(RSS of the process and its descendants, RSS of the Java ones among them), bytes; each one's
    CPU seconds so far (user + system) into `cpu` by pid."""
    import psutil

    try:
        tree = [psutil.Process(pid)]
        tree += tree[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    total = jvm = 0
    for process in tree:
        try:
            with process.oneshot():
                rss = process.memory_info().rss
                times = process.cpu_times()
                cpu[process.pid] = times.user + times.system
                total += rss
                if process.name().startswith("java"):
                    jvm += rss
        except psutil.NoSuchProcess:
            pass
    return total, jvm


def run_measured(task: dict, work: Path, max_s: float) -> dict:
    """The task in a child process (its own session, so a stop ends the JVM too): wall seconds, the
    peak RSS of its process tree, and what it reported, or, past `max_s`, what it completed."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    spill = work / "spill"  # the engine's spill (DuckDB's temp directory, Spark's local dir), measured
    shutil.rmtree(spill, ignore_errors=True)
    spill.mkdir()
    task = {**task, "out": str(out), "progress": str(work / "progress.jsonl"), "report": str(work / "report.json"),
            "spill": str(spill)}
    Path(task["progress"]).unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    log = work / "stderr.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(task)], start_new_session=True,
                                stderr=stderr, env={**os.environ, "TMPDIR": str(spill)})
        try:
            return _watch(proc, task, began, load_before, max_s, log)
        finally:
            shutil.rmtree(spill, ignore_errors=True)


def _du(folder: Path) -> int:
    """Bytes under a folder now (files that vanish while it is walked are skipped)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _watch(proc: subprocess.Popen, task: dict, began: float, load_before: float, max_s: float, log: Path) -> dict:
    peak = jvm_peak = spill_peak = 0
    cpu: dict[int, float] = {}
    loads = [load_before]
    next_load = began + 5.0
    stopped = False
    while proc.poll() is None:
        total, jvm = _tree_sample(proc.pid, cpu)
        peak, jvm_peak = max(peak, total), max(jvm_peak, jvm)
        if time.perf_counter() > next_load:
            loads.append(os.getloadavg()[0])
            spill_peak = max(spill_peak, _du(Path(task["spill"])))
            next_load += 5.0
        if time.perf_counter() - began > max_s:
            stopped = True
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            break
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - began
    steps = [json.loads(line) for line in Path(task["progress"]).read_text().splitlines()] \
        if Path(task["progress"]).exists() else []
    result = {"wall_s": wall, "cpu_s": sum(cpu.values()), "peak_rss_gb": peak / 2**30,
              "jvm_peak_rss_gb": jvm_peak / 2**30, "load_avg_1m_before": load_before,
              "load_avg_1m_mean": statistics.mean(loads), "peak_spill_gb": spill_peak / 2**30,
              "disk_free_gb_after": shutil.disk_usage(Path(task["spill"]).parent).free / 2**30, "steps": steps,
              "completed": not stopped and proc.returncode == 0}
    if stopped:
        result["note"] = f"stopped after {max_s / 60:.0f} min; {len(steps)} table snapshots completed"
    elif proc.returncode != 0:
        result["note"] = f"failed after {len(steps)} table snapshots: {_error(log)}"
        print(f"    failed: {result['note']}", flush=True)
    else:
        result |= json.loads(Path(task["report"]).read_text())
    return result


def _error(log: Path) -> str:
    """The failure's own line from the child's stderr (the exception), else its last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    cause = [line.lstrip(": ") for line in lines if line.startswith(": org.apache.spark")]  # py4j's Java cause
    found = [line for line in lines if "Error" in line or "Exception" in line]
    return (cause[:1] or found[-1:] or lines[-1:] or ["no message"])[0][:300]


# -- comparing outputs -----------------------------------------------------------------------------------


def _read_output(out: Path, table: str, at: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shoprank.features.engine.job import snapshot_name
    from shoprank.features.engine.queries import KEYS

    path = out / table / snapshot_name(_times([at])[0])
    files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_"))) if path.is_dir() \
        else [path]
    rows = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    return rows.sort_by([(k, "ascending") for k in KEYS[table]])


def _column_agreement(a, b) -> float:
    """The share of rows whose values are equal (doubles within 1e-9 relative; lists element by element)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_list(a.type) or pa.types.is_large_list(a.type):
        oa, ob = (np.asarray(x.combine_chunks().offsets if isinstance(x, pa.ChunkedArray) else x.offsets)
                  for x in (a, b))
        la, lb = np.diff(oa), np.diff(ob)
        fa, fb = pc.list_flatten(a), pc.list_flatten(b)
        same_len = la == lb
        if len(fa) != len(fb) or not same_len.all():
            # rows of different length differ; compare the rest element by element
            ok = same_len.copy()
            va, vb = fa.to_pylist(), fb.to_pylist()
            for r in np.flatnonzero(same_len):
                x, y = va[oa[r]:oa[r + 1]], vb[ob[r]:ob[r + 1]]
                ok[r] = all(_close(p, q) for p, q in zip(x, y, strict=True))
            return float(ok.mean()) if len(ok) else 1.0
        equal = _elements_equal(fa, fb)
        per_row = np.ones(len(la), dtype=bool)
        nonempty = la > 0
        if nonempty.any():
            per_row[nonempty] = np.logical_and.reduceat(equal, oa[:-1][nonempty] - oa[0])
        return float(per_row.mean()) if len(per_row) else 1.0
    return float(_elements_equal(a, b).mean()) if len(a) else 1.0


def _close(p, q) -> bool:
    if isinstance(p, float) and isinstance(q, float):
        return math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(p) and math.isnan(q))
    return p == q


def _elements_equal(a, b):
    import numpy as np
    import pyarrow as pa

    if pa.types.is_floating(a.type):
        x, y = np.asarray(a.to_numpy(zero_copy_only=False), float), np.asarray(b.to_numpy(zero_copy_only=False), float)
        return np.isclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True)
    if pa.types.is_timestamp(a.type):
        a, b = a.cast(pa.timestamp("us", "UTC")), b.cast(pa.timestamp("us", "UTC"))
    x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
    return np.asarray(x == y, dtype=bool)


def compare_outputs(left: Path, right: Path, at: str, tables=("user_stats", "item_stats", "item_neighbours")) -> dict:
    """Per table at `at`: the rows each side wrote, and per column the share of rows that agree
    (only the columns below 1 are listed)."""
    import pyarrow as pa

    out = {}
    for table in tables:
        a, b = _read_output(left, table, at), _read_output(right, table, at)
        entry = {"rows": [a.num_rows, b.num_rows]}
        if a.num_rows == b.num_rows:
            differing = {}
            for name in a.schema.names:
                if name == "event_timestamp":
                    continue
                x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
                if x.type != y.type:  # int32 against int64, say: compare as the wider
                    try:
                        y = y.cast(x.type)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        x = x.cast(y.type)
                share = _column_agreement(x, y)
                if share < 1.0:
                    differing[name] = share
            entry["columns_not_all_equal"] = differing
        out[table] = entry
    return out


def list_recall(approx, exact, column: str, k: int = 50) -> dict:
    """Recall@k of `approx`'s `column` lists against `exact`'s, per user with an exact list: the mean over
    those users (macro), the pooled share (micro), and the share of users whose list is the same."""
    import numpy as np

    a = dict(zip(approx.column("user_key").to_pylist(), approx.column(column).to_pylist(), strict=True))
    hits = wanted = 0
    per_user, same = [], 0
    for user, truth in zip(exact.column("user_key").to_pylist(), exact.column(column).to_pylist(), strict=True):
        truth = (truth or [])[:k]
        if not truth:
            continue
        got = (a.get(user) or [])[:k]
        h = len(set(truth) & set(got))
        hits, wanted = hits + h, wanted + len(truth)
        per_user.append(h / len(truth))
        same += got == truth
    return {f"recall@{k}": float(np.mean(per_user)) if per_user else float("nan"),
            f"pooled_recall@{k}": hits / wanted if wanted else float("nan"),
            "identical_lists": same / len(per_user) if per_user else float("nan"), "users": len(per_user)}


# -- the parts ---------------------------------------------------------------------------------------


def summarise(runs: list[dict]) -> dict:
    """One engine at one size over its repeats: median seconds, the highest peak, per-table seconds."""
    done = [r for r in runs if r["completed"]]
    entry: dict = {"completed": bool(done), "runs": len(runs), "seconds": [r["wall_s"] for r in runs],
                   "peak_rss_gb": [r["peak_rss_gb"] for r in runs],
                   "jvm_peak_rss_gb": [r["jvm_peak_rss_gb"] for r in runs],
                   "cpu_s": [r["cpu_s"] for r in runs], "load_avg_1m_mean": [r["load_avg_1m_mean"] for r in runs],
                   "peak_spill_gb": [r["peak_spill_gb"] for r in runs],
                   "disk_free_gb_after": [r["disk_free_gb_after"] for r in runs],
                   "max_peak_rss_gb": max(r["peak_rss_gb"] for r in runs)}
    chosen = done or runs
    median_run = sorted(chosen, key=lambda r: r["wall_s"])[(len(chosen) - 1) // 2]
    table_s: dict[str, float] = {}
    rows: dict[str, int] = {}
    per_snapshot: dict[str, dict[str, float]] = {}
    for step in median_run["steps"]:
        table_s[step["table"]] = table_s.get(step["table"], 0.0) + step["seconds"]
        rows[step["table"]] = rows.get(step["table"], 0) + step["rows"]
        per_snapshot.setdefault(step["table"], {})[step["at"][:10]] = step["seconds"]
    entry |= {"median_s": statistics.median(r["wall_s"] for r in chosen), "table_s": table_s,
              "table_s_by_snapshot": per_snapshot, "rows": rows,
              "job_s": sum(table_s.values()),
              "session_s": statistics.median(r.get("session_s", float("nan")) for r in chosen),
              "imports_s": statistics.median(r.get("imports_s", float("nan")) for r in chosen)}
    if not done:
        entry["median_s"] = None
        entry["note"] = median_run.get("note", "")
        entry["seconds_until_stopped"] = median_run["wall_s"]
    return entry


def exponents(sizes: list[dict]) -> dict[str, float | None]:
    """Slope of log(seconds) against log(events) per engine over the sizes it completed."""
    import numpy as np

    out: dict[str, float | None] = {}
    for name in ENGINES:
        points = [(s["events"], s["engines"][name]["median_s"]) for s in sizes
                  if name in s["engines"] and s["engines"][name]["median_s"]]
        out[name] = float(np.polyfit(np.log([p[0] for p in points]), np.log([p[1] for p in points]), 1)[0]) \
            if len(points) >= 2 else None
    return out


def lower_bounds(sizes: list[dict]) -> dict[str, float]:
    """Per engine stopped at its largest size (time ran out, not a failure): the exponent its time
    when stopped gives against its largest completed size, which the real one exceeds."""
    out = {}
    for name in ENGINES:
        done = [s for s in sizes if s["engines"].get(name, {}).get("completed")]
        cut = [s for s in sizes if name in s["engines"] and not s["engines"][name]["completed"]
               and s["engines"][name].get("note", "").startswith("stopped")]
        if done and cut and cut[-1]["events"] > done[-1]["events"]:
            a, b = done[-1], cut[-1]
            out[name] = math.log(b["engines"][name]["seconds_until_stopped"] / a["engines"][name]["median_s"]) \
                / math.log(b["events"] / a["events"])
    return out


def code_version() -> dict:
    """The engine's last commit (the queries that ran), HEAD, and whether the engine's files differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("log", "-1", "--format=%h", "--", "shoprank/features/engine"),  # the engine's last change
            "head": git("rev-parse", "--short", "HEAD"),
            "engine_files_modified": bool(git("status", "--porcelain", "--", "shoprank/features/engine"))}


def matched_exponents(sizes: list[dict]) -> dict[str, dict]:
    """Per engine, between its smallest and largest size: the exponent of the summed seconds of the
    (table, snapshot) steps it completed at both, so a run that failed or was stopped at the larger
    size still says how its completed part grew."""
    out = {}
    for name in ENGINES:
        have = [s for s in sizes if name in s["engines"]]
        if len(have) < 2:
            continue
        small, big = have[0]["engines"][name]["table_s_by_snapshot"], have[-1]["engines"][name]["table_s_by_snapshot"]
        common = [(t, at) for t in small for at in small[t] if at in big.get(t, {})]
        if not common:
            continue
        a, b = sum(small[t][at] for t, at in common), sum(big[t][at] for t, at in common)
        out[name] = {"exponent": math.log(b / a) / math.log(have[-1]["events"] / have[0]["events"]),
                     "steps": len(common), "seconds": [a, b], "events": [have[0]["events"], have[-1]["events"]]}
    return out


def engines_part(args: argparse.Namespace, results: dict, save) -> None:
    from shoprank.features.engine import queries

    results["job"] = {"tables": list(queries.QUERIES), "labels": False, "knn_cap": queries.KNN_ITEM_BUYERS,
                      "duckdb_memory_limit": {n: r[1] for n, r in ENGINE_RUNS.items() if r[1]},
                      "spark_master": SPARK_MASTER,
                      "item_neighbours": "at the last snapshot only"}
    earlier = {s["events_requested"]: s for s in results.get("sizes", [])}
    sizes: list[dict] = [s for s in results.get("sizes", []) if s["events_requested"] not in args.events]
    for events in sorted(args.events):
        meta = scale_inputs(events, args.scratch)
        print(f"{meta['events']:,} events ({meta['source']}), {len(meta['snapshots'])} snapshots", flush=True)
        size = {k: meta[k] for k in ("source", "events_requested", "events", "users", "items", "snapshots")}
        size["code"] = code_version()
        # the engines not rerun keep their figures at this size (`--engines` names the ones to run)
        kept = {n: e for n, e in earlier.get(events, {}).get("engines", {}).items() if n not in args.engines}
        if kept:
            size["code_kept_engines"] = earlier[events].get("code")
        size["engines"] = dict(kept)
        sizes.append(size)
        sizes.sort(key=lambda s: s["events"])
        work = Path(tempfile.mkdtemp(prefix=f"bench-engines-{events}-", dir=args.scratch))
        runs: dict[str, list[dict]] = {name: [] for name in args.engines}
        for repeat in range(args.repeats):
            for name in args.engines:
                task = {"kind": "job", "engine": ENGINE_RUNS[name][0], "memory_limit": ENGINE_RUNS[name][1],
                        "interactions": meta["interactions"],
                        "catalogue": meta["catalogue"], "times": meta["snapshots"], "tables": list(queries.QUERIES),
                        "knn_cap": queries.KNN_ITEM_BUYERS}
                run = run_measured(task, work / f"{name}-{repeat}", args.max_minutes * 60)
                runs[name].append(run)
                state = "" if run["completed"] else f"  STOPPED: {run['note']}"
                print(f"  {name:<13} run {repeat + 1}: {run['wall_s']:7.1f} s  peak {run['peak_rss_gb']:5.2f} GB"
                      f"{state}", flush=True)
                size["engines"][name] = summarise(runs[name])
                results["sizes"] = sizes
                save()
        engines = size["engines"]
        # Spark against the DuckDB run that completed: the default 4 GB limit's, else the 8 GB one's
        duck = next((n for n in ("duckdb", "duckdb_8gb") if engines.get(n, {}).get("completed")), None)
        if duck and "spark_local2" in engines:
            d, s = engines[duck], engines["spark_local2"]
            size["spark_against"] = duck
            size["ratio_spark_to_duckdb"] = s["median_s"] / d["median_s"] if s["median_s"] else None
            size["ratio_spark_to_duckdb_by_table"] = {t: s["table_s"][t] / d["table_s"][t] for t in s["table_s"]
                                                      if d["table_s"].get(t)}
            if s["completed"]:
                size["agreement"] = compare_outputs(work / f"{duck}-0" / "out", work / "spark_local2-0" / "out",
                                                    meta["snapshots"][-1])
        for entry in engines.values():
            if entry["median_s"]:
                entry["s_per_million_events"] = entry["median_s"] / (size["events"] / 1e6)
        save()
        if not args.keep_outputs:
            shutil.rmtree(work, ignore_errors=True)


def tafeng_part(args: argparse.Namespace, results: dict, save) -> None:
    """At one snapshot: the SQL job's user and item stats with the kNN exact and capped, the capped lists'
    recall against the exact ones, and the pandas reference on the same data and time."""
    import pandas as pd
    import pyarrow.parquet as pq

    from shoprank.features.engine import queries

    meta = tafeng_inputs(args.scratch)
    at = pd.Timestamp(TAFENG_AT, tz="UTC")
    tables = ["item_stats", "user_stats"]
    part: dict = {k: meta[k] for k in ("source", "events", "users", "items")}
    part |= {"at": str(at), "tables": tables, "code": code_version(), "knn": {}, "sql_vs_pandas": {}}
    results["tafeng"] = part
    work = Path(tempfile.mkdtemp(prefix="bench-engines-tafeng-", dir=args.scratch))
    limit = args.max_minutes * 60

    outs = {}
    for cap in (None, *sorted(KNN_CAPS, reverse=True)):
        label = "exact" if cap is None else str(cap)
        run = run_measured({"kind": "job", "engine": "duckdb", "interactions": meta["interactions"],
                            "catalogue": meta["catalogue"], "times": [str(at)], "tables": tables, "knn_cap": cap},
                           work / f"knn-{label}", limit)
        outs[label] = work / f"knn-{label}" / "out"
        table_s = {t: sum(s["seconds"] for s in run["steps"] if s["table"] == t) for t in tables}
        part["knn"][label] = {"completed": run["completed"], "user_stats_s": table_s["user_stats"],
                              "table_s": table_s, "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
                              "peak_rss_gb": run["peak_rss_gb"], "peak_spill_gb": run["peak_spill_gb"],
                              "load_avg_1m_mean": run["load_avg_1m_mean"],
                              **({"note": run["note"]} if "note" in run else {})}
        print(f"  Ta Feng at {TAFENG_AT}, kNN {label:<5}: user_stats {table_s['user_stats']:6.1f} s, "
              f"run {run['wall_s']:6.1f} s", flush=True)
        save()
    done = {label for label, entry in part["knn"].items() if entry["completed"]}
    exact = _read_output(outs["exact"], "user_stats", str(at)) if "exact" in done else None
    for cap in KNN_CAPS:
        if exact is None or str(cap) not in done:
            continue
        approx = _read_output(outs[str(cap)], "user_stats", str(at))
        part["knn"][str(cap)] |= list_recall(approx, exact, "user_knn_items", queries.TOP_KNN)
        print(f"  kNN cap {cap}: recall@{queries.TOP_KNN} {part['knn'][str(cap)][f'recall@{queries.TOP_KNN}']:.4f}",
              flush=True)
    save()

    # the pandas reference on the same data and time, against the two SQL runs above
    versus = part["sql_vs_pandas"]
    for label, key in (("sql_exact_knn", "exact"), (f"sql_knn_cap_{queries.KNN_ITEM_BUYERS}",
                                                    str(queries.KNN_ITEM_BUYERS))):
        versus[label] = {k: part["knn"][key][k] for k in ("completed", "wall_s", "cpu_s", "peak_rss_gb", "table_s")}
    run = run_measured({"kind": "pandas", "interactions": meta["interactions"], "catalogue": meta["catalogue"],
                        "times": [str(at)]}, work / "pandas", limit)
    versus["pandas"] = {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "peak_rss_gb": run["peak_rss_gb"],
                        "load_avg_1m_mean": run["load_avg_1m_mean"], "completed": run["completed"],
                        **({"note": run["note"]} if "note" in run else {})}
    print(f"  Ta Feng pandas reference at {TAFENG_AT}: {run['wall_s']:6.1f} s", flush=True)
    if run["completed"]:
        reference = pq.read_table(work / "pandas" / "out" / "user_stats_last.parquet").sort_by("user_key")
        versus["pandas_over_sql"] = {label: run["wall_s"] / versus[label]["wall_s"] for label in list(versus)
                                     if label.startswith("sql_") and versus[label]["completed"]}
        if exact is not None:
            versus["lists_sql_exact_against_pandas"] = {
                column: list_recall(exact, reference, column, k) for column, k in
                (("user_knn_items", queries.TOP_KNN), ("user_cooc_items", queries.TOP_COOC))}
    save()
    if not args.keep_outputs:
        shutil.rmtree(work, ignore_errors=True)


# -- the plot --------------------------------------------------------------------------------------------


LABELS = {"duckdb": "DuckDB, 4 GB limit", "duckdb_8gb": "DuckDB, 8 GB limit", "spark_local2": "Spark local[2]"}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    sizes = results.get("sizes", [])
    for name in ENGINES:
        done = [(s["events"], s["engines"][name]["median_s"]) for s in sizes
                if name in s["engines"] and s["engines"][name]["median_s"]]
        stopped = [(s["events"], s["engines"][name]["seconds_until_stopped"]) for s in sizes
                   if name in s["engines"] and not s["engines"][name]["completed"]]
        slope = results.get("exponent", {}).get(name)
        label = LABELS[name] + (f", exponent {slope:.2f}" if slope is not None else "")
        if done:
            line, = ax.plot(*zip(*done, strict=True), marker="o", lw=2, label=label)
            if stopped:
                ax.plot(*zip(*stopped, strict=True), marker="x", ls="none", ms=10, color=line.get_color(),
                        label=f"{LABELS[name]}: did not finish (time when it ended)")
    if sizes:
        events = [s["events"] for s in sizes]
        first = next((s for s in sizes if s["engines"].get("duckdb", {}).get("median_s")), None)
        if first:
            base = first["engines"]["duckdb"]["median_s"]
            ax.plot(events, [base * e / first["events"] for e in events], ls=":", color="grey",
                    label="linear from DuckDB's smallest")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("seconds (whole feature job, 6 snapshots)")
    ax.set_title(f"feature job: DuckDB against Spark local[2] ({results['machine']['cpus']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# -- main ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="bench-scale sizes (its work folders, made where absent)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=["duckdb", "spark_local2"],
                        help="duckdb_8gb: DuckDB with twice the default memory limit")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, default=40.0, help="stop a run past this, keep what it did")
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="bench-scale's work folders")
    parser.add_argument("--skip-scale", action="store_true", help="only the Ta Feng part (keeps the sizes measured)")
    parser.add_argument("--skip-tafeng", action="store_true", help="only the engines (keeps the Ta Feng figures)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the job's output files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task = json.loads(args.child)
        report = child(task)
        Path(task["report"]).write_text(json.dumps(report))
        return
    args.scratch.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "note": "a shared machine: the load average around each run is recorded"}}
    if args.skip_scale and "sizes" in previous:
        results |= {k: previous[k] for k in ("job", "sizes", "exponent") if k in previous}
    elif "sizes" in previous:
        results["sizes"] = previous["sizes"]  # sizes not rerun are kept
    if args.skip_tafeng and "tafeng" in previous:
        results["tafeng"] = previous["tafeng"]

    def save() -> None:
        if results.get("sizes"):
            results["exponent"] = exponents(results["sizes"])
            results["exponent_lower_bound"] = lower_bounds(results["sizes"])
            results["exponent_matched_steps"] = matched_exponents(results["sizes"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        if len(results.get("sizes", [])) >= 1:
            plot(results, args.out.with_suffix(".png"))

    if not args.skip_scale:
        engines_part(args, results, save)
    if not args.skip_tafeng:
        tafeng_part(args, results, save)
    save()
    print(json.dumps({"exponent": results.get("exponent"),
                      "sizes": [{"events": s["events"], **{n: e["median_s"] for n, e in s["engines"].items()}}
                                for s in results.get("sizes", [])],
                      "tafeng_knn": {k: v.get("recall@50")
                                     for k, v in results.get("tafeng", {}).get("knn", {}).items()}},
                     indent=2))


if __name__ == "__main__":
    main()
