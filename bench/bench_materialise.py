"""`make bench-materialise`: how fast the online store is loaded: Feast's `materialize` into SQLite and
into a real Redis, and the fast Redis loader (`shoprank.features.redis_loader`, Feast's layout
without Feast's per-value conversion) into the same Redis, in the same session.

    .venv/bin/python bench/bench_materialise.py

Needs the demo's feature sources (`make demo`). Each store gets a fresh registry copy, `feast apply`
and `FeatureStore.materialize` of the newest snapshot (the nightly job's window), one feature view
at a time, so each view's rate is its own: `user_stats` rows carry the user's ranked lists (up to
~860 list entries), `item_stats` rows ten scalars. The Redis server is a real `redis-server` on
loopback (Debian package), started and stopped here. Results: bench/results/materialise.json.
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


def measure_loader(store_url: str, work: Path) -> dict[str, dict[str, float]]:
    """The fast loader over the same window, into a fresh Redis database (read, encode, write)."""
    from shoprank.features import store as feast_store
    from shoprank.features.redis_loader import load_view

    demo, fs, start, end = _fresh_store(store_url, work, "loader")
    return _with_total({view: _timed("loader", view, lambda v=view: load_view(
        fs, v, feast_store._window(demo, v, start, end), start.to_pydatetime(), end.to_pydatetime()))
        for view in ("item_stats", "user_stats")})


def changed_between_snapshots() -> dict[str, float]:
    """What an incremental write could skip: the share of users present in the last two snapshots
    whose row changed (any feature), and of the users in the last one who were in the one before."""
    from shoprank.features import store as feast_store
    from shoprank.layout import USER_STATS_KEY
    from shoprank.settings import load_settings

    users = feast_store.read_offline_table(load_settings(), USER_STATS_KEY)
    last, before = sorted(users["event_timestamp"].unique())[-2:][::-1]
    now = users[users["event_timestamp"] == last].set_index("user_key").drop(columns=["event_timestamp"])
    then = users[users["event_timestamp"] == before].set_index("user_key").drop(columns=["event_timestamp"])
    both = now.index.intersection(then.index)
    same = sum(1 for key in both if now.loc[key].astype(str).equals(then.loc[key].astype(str)))
    return {"users_last_snapshot": len(now), "users_in_both": len(both),
            "changed_share": round(1 - same / max(len(both), 1), 4), "new_share": round(1 - len(both) / len(now), 4)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="shoprank-bench-materialise-"))
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
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
                results["redis_loader"] = measure_loader(f"redis://127.0.0.1:{port}/1", work)
                results["loader_vs_feast"] = round(results["redis_loader"]["all"]["rows_per_s"]
                                                   / results["redis"]["all"]["rows_per_s"], 1)
                results["goal_met"] = results["redis_loader"]["all"]["rows_per_s"] >= GOAL_ROWS_PER_S
                info = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"], capture_output=True,
                                      text=True).stdout
                used = next((line.split(":")[1] for line in info.splitlines() if line.startswith("used_memory:")), "0")
                results["redis"]["used_memory_mb"] = round(int(used) / 2**20, 1)
            finally:
                proc.terminate()
                proc.wait(10)
        results["incremental"] = changed_between_snapshots()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
