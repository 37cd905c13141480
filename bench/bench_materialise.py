"""`make bench-materialise`: how fast the online store is loaded: Feast's `materialize` into SQLite and
into a real Redis, and the fast Redis loader (`shoprank.features.redis_loader`, Feast's layout
without Feast's per-value conversion) into the same Redis, in the same session.

    .venv/bin/python bench/bench_materialise.py

Needs the demo's feature sources (`make demo`). Each store gets a fresh registry copy, `feast apply`
and `FeatureStore.materialize` of the newest snapshot (the nightly job's window), one feature view
at a time, so each view's rate is its own: `user_stats` rows carry the user's ranked lists (a few
hundred list entries, about 4 KB a row in Redis), `item_stats` rows ten scalars. The loader's time
includes reading the view's window from the offline source (`read_seconds` of it), as Feast's
`materialize` reads it too; it takes about a second, so it runs five times (each into an emptied
server) and the best run is kept (all five in `redis_loader_runs_rows_per_s`). The Redis
server is a real `redis-server` on loopback (Debian package), started and stopped here. It also
times Redis alone storing the loader's commands (sent over a plain socket, encoded beforehand): the
floor under the loader's write (and the CPU the encoding takes). And it measures what an
incremental write could skip: how many rows of each view change between the last two snapshots.
Results: bench/results/materialise.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402

from bench.bench_serving import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "materialise.json"
GOAL_ROWS_PER_S = 50_000
LOADER_RUNS = 5  # the loader takes about a second: its best of five, each into an emptied server


def _fresh_store(store_url: str, work: Path, name: str):
    """(demo settings, a FeatureStore over a copy of the demo's registry applied to `store_url`, the
    window of the newest snapshot): every arm loads the same rows into an empty online store."""
    from shoprank.features import store as feast_store
    from shoprank.features.definitions import feature_objects
    from shoprank.features.online import OnlineFeatures
    from shoprank.settings import load_settings

    demo = load_settings()
    registry = work / f"registry-{name}.db"
    shutil.copyfile(demo.feast_dir / "registry.db", registry)
    settings = load_settings(feast_registry=str(registry), feast_online_store=store_url)
    fs = feast_store.feature_store(settings)
    fs.apply(feature_objects(demo.feast_offline, demo.s3_endpoint_url or None))
    end = pd.Timestamp(OnlineFeatures(fs).version().data_end)
    return demo, fs, end - pd.Timedelta(days=1, seconds=1), end


def _timed(label: str, view: str, load) -> dict[str, float]:
    started = time.perf_counter()
    rows = load()
    seconds = time.perf_counter() - started
    print(f"{label:<7} {view:<11} {rows:>7,} rows in {seconds:6.1f} s = {rows / seconds:>8,.0f} rows/s", flush=True)
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


def _with_total(out: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    total_rows = sum(v["rows"] for v in out.values())
    total_s = sum(v["seconds"] for v in out.values())
    out["all"] = {"rows": total_rows, "seconds": round(total_s, 2), "rows_per_s": round(total_rows / total_s)}
    return out


def measure(store_url: str, work: Path) -> dict[str, dict[str, float]]:
    """Feast's `materialize` of the newest snapshot, one view at a time."""
    from shoprank.layout import DERIVED_PREFIX

    demo, fs, start, end = _fresh_store(store_url, work, store_url.split(":", 1)[0])

    def load(view: str) -> int:
        source = Path(demo.feast_offline) / DERIVED_PREFIX / f"{view}.parquet"
        rows = len(pd.read_parquet(source, columns=["event_timestamp"])
                   .query("event_timestamp >= @start and event_timestamp < @end"))
        fs.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(), feature_views=[view])
        return rows

    return _with_total({view: _timed(store_url.split(":")[0], view, lambda v=view: load(v))
                        for view in ("item_stats", "user_stats")})


def measure_loader(store_url: str, work: Path, name: str = "loader") -> dict[str, dict[str, float]]:
    """The fast loader over the same window, into a fresh Redis database: read the window from the
    offline source, encode, write (the reply to every command read)."""
    from shoprank.features import store as feast_store
    from shoprank.features.redis_loader import load_view

    demo, fs, start, end = _fresh_store(store_url, work, name)
    read: dict[str, float] = {}

    def load(view: str) -> int:
        started = time.perf_counter()
        window = feast_store._window(demo, view, start, end)
        read[view] = time.perf_counter() - started
        return load_view(fs, view, window, start.to_pydatetime(), end.to_pydatetime())

    out = {view: _timed("loader", view, lambda v=view: load(v)) for view in ("item_stats", "user_stats")}
    for view, seconds in read.items():
        out[view]["read_seconds"] = round(seconds, 2)
    return _with_total(out)


def _store_alone(port: int, db: int, payload: bytes, commands: int) -> float:
    """Seconds from the first byte of `payload` sent to the reply of its last command read."""
    import socket
    import threading

    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"SELECT %d\r\n" % db)
        sock.recv(64)

        def read() -> None:
            lines = 0
            while lines < commands:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                lines += chunk.count(b"\r\n")

        started = time.perf_counter()
        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(payload)
        reader.join()
        return time.perf_counter() - started


def measure_redis_alone(port: int, db: int, work: Path) -> dict[str, dict[str, float]]:
    """How long Redis itself takes to store the same rows: the loader's commands for each view,
    encoded beforehand (not timed), sent over a plain socket into an empty database and every reply
    read. The floor under the loader's write on this machine (Redis runs commands on one thread)."""
    from shoprank.features import store as feast_store
    from shoprank.features.redis_loader import _latest, _ViewWriter

    demo, fs, start, end = _fresh_store(f"redis://127.0.0.1:{port}/{db}", work, "alone")
    out = {}
    for view in ("item_stats", "user_stats"):
        writer = _ViewWriter(fs, fs.get_feature_view(view), None)
        table = _latest(feast_store._window(demo, view, start, end), writer.join_key, writer.timestamp)
        cpu = time.thread_time()
        payload = b"".join(bytes(writer.encode(table.slice(first, 4096)).data)
                           for first in range(0, table.num_rows, 4096))
        cpu = time.thread_time() - cpu  # the loader's encoding, alone: CPU seconds of this thread
        rows = table.num_rows
        seconds = _store_alone(port, db, payload, rows)
        print(f"{'redis':<7} {view:<11} {rows:>7,} rows in {seconds:6.1f} s = {rows / seconds:>8,.0f} rows/s "
              f"(the loader's {len(payload) / 2**20:,.0f} MB of commands alone; encoded in {cpu:.2f} s of CPU)",
              flush=True)
        out[view] = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                     "megabytes": round(len(payload) / 2**20, 1), "encode_cpu_seconds": round(cpu, 3)}
    return out


def _shape() -> dict[str, float]:
    """List entries per user row in the newest snapshot (what makes a user row slow to convert)."""
    import io

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shoprank.features import store as feast_store
    from shoprank.settings import load_settings
    from shoprank.storage import open_for

    settings = load_settings()
    users = pq.read_table(io.BytesIO(open_for(settings, "offline").get_bytes(feast_store.VIEW_SOURCES["user_stats"])))
    users = users.filter(pc.equal(users.column("event_timestamp"), pc.max(users.column("event_timestamp"))))
    entries = sum(pc.sum(pc.list_value_length(users.column(name))).as_py() or 0
                  for name in users.column_names if users.schema.field(name).type.num_fields)
    return {"user_rows": users.num_rows, "list_entries_per_user_row": round(entries / max(users.num_rows, 1))}


def changed_between_snapshots() -> dict:
    """What an incremental write could skip. For each view, of the entities in both of the last
    two snapshots, the share whose row would be written with other bytes (any feature's
    `ValueProto` differs; the `_ts` field always does), the share of the last snapshot's entities
    that are new, and per feature the share that changed. Compared as the loader encodes them, so
    "changed" means "Redis would receive different bytes"."""
    import io

    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shoprank.features import store as feast_store
    from shoprank.features.redis_loader import encode_column
    from shoprank.settings import load_settings
    from shoprank.storage import open_for

    settings = load_settings()
    fs = feast_store.feature_store(settings)
    out: dict = {"changed_share_by_feature": {}}
    for view, prefix in (("user_stats", "users"), ("item_stats", "items")):
        definition = fs.get_feature_view(view)
        (key,) = [c.name for c in definition.entity_columns]
        table = pq.read_table(io.BytesIO(open_for(settings, "offline").get_bytes(feast_store.VIEW_SOURCES[view])))
        stamps = pc.unique(table.column("event_timestamp")).sort()
        if len(stamps) < 2:
            raise SystemExit(f"{view}: the offline source has {len(stamps)} snapshot(s); two are needed")
        now, then = (table.filter(pc.equal(table.column("event_timestamp"), stamps[i])).sort_by(key) for i in (-1, -2))
        now_both = now.filter(pc.is_in(now.column(key), value_set=then.column(key)))
        then_both = then.filter(pc.is_in(then.column(key), value_set=now.column(key)))
        changed = np.zeros(now_both.num_rows, dtype=bool)
        by_feature = {}
        for feature in definition.features:
            new = encode_column(now_both.column(feature.name), feature.dtype)
            old = encode_column(then_both.column(feature.name), feature.dtype)
            differs = np.fromiter((a != b for a, b in zip(new, old, strict=True)), dtype=bool, count=len(new))
            by_feature[feature.name] = round(float(differs.mean()), 4) if len(differs) else 0.0
            changed |= differs
        both = now_both.num_rows
        names = ("users_last_snapshot", "users_in_both", "changed_share", "new_share") if prefix == "users" else \
            ("items_last_snapshot", "items_in_both", "items_changed_share", "items_new_share")
        out.update(zip(names, (now.num_rows, both, round(float(changed.mean()), 4) if both else 0.0,
                               round(1 - both / max(now.num_rows, 1), 4)), strict=True))
        out["changed_share_by_feature"][view] = dict(sorted(by_feature.items(), key=lambda kv: -kv[1]))
    out["changed_share_by_feature"] = out.pop("changed_share_by_feature")  # after the headline figures
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="shoprank-bench-materialise-"))
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "nice": os.nice(0)},
                     "feast": __import__("feast").__version__, "goal_rows_per_s": GOAL_ROWS_PER_S}
    try:
        results["sqlite"] = measure(f"sqlite:///{work / 'online.db'}", work)
        redis = shutil.which("redis-server")
        if redis:
            port = free_port()
            proc = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                results["redis"] = measure(f"redis://127.0.0.1:{port}", work)
                info = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"], capture_output=True,
                                      text=True).stdout
                used = next((line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")), "0")
                results["redis"]["used_memory_mb"] = round(int(used) / 2**20, 1)  # what Feast's run stored
                # every later run starts from the same empty server: what Redis already holds (and how
                # much of its memory it must still fault in) changes how fast it stores rows
                flush = ["redis-cli", "-p", str(port), "flushall"]
                subprocess.run(flush, check=True, capture_output=True)
                runs = []
                for run in range(LOADER_RUNS):
                    runs.append(measure_loader(f"redis://127.0.0.1:{port}/1", work, f"loader-{run}"))
                    subprocess.run(flush, check=True, capture_output=True)
                results["redis_loader"] = min(runs, key=lambda run: run["all"]["seconds"])
                results["redis_loader_runs_rows_per_s"] = [run["all"]["rows_per_s"] for run in runs]
                results["loader_vs_feast"] = round(results["redis_loader"]["all"]["rows_per_s"]
                                                   / results["redis"]["all"]["rows_per_s"], 1)
                results["goal_met"] = results["redis_loader"]["all"]["rows_per_s"] >= GOAL_ROWS_PER_S
                results["redis_alone"] = measure_redis_alone(port, 1, work)
            finally:
                proc.terminate()
                proc.wait(10)
        results["incremental"] = changed_between_snapshots()
        results["shape"] = _shape()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
