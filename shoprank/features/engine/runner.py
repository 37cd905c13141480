"""Run the feature job where the settings say, and hand its output on in the Feast schemas.

`feature_engine` picks the place: `duckdb` or `spark` run the job in this process over the step's
local files; `spark-operator` submits it as a SparkApplication over the crossing's tables in the
store, waits for it, and copies its output down part by part. Either way the step then reads the
same layout (`<tables>/<table>/at=<time>.parquet`, a file or a folder of parts) one part at a time:
each part is checked against the Feast schema (`schema.conform`) and freed before the next, so no
step holds all the rows, nor any of the interactions, in Python.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoprank.features.engine import queries
from shoprank.features.engine.engines import open_engine
from shoprank.features.engine.job import run_feature_job, snapshot_name
from shoprank.features.engine.schema import conform
from shoprank.settings import Settings
from shoprank.storage import open_for

ENGINES = ("duckdb", "spark", "spark-operator")
ENGINE_PREFIX = "features/engine"  # where a SparkApplication writes, in the features bucket


def _report(name: str, at: pd.Timestamp, n: int, seconds: float) -> None:
    print(f"features: {name:<16} {at:%Y-%m-%d %H:%M}  {n:>10,} rows  {seconds:6.1f} s", file=sys.stderr, flush=True)


def compute_tables(settings: Settings, interactions: Path | str, items: Path | str, times: Sequence[pd.Timestamp],
                   out: Path, tables: Sequence[str] = tuple(queries.QUERIES), run_id: str = "",
                   store_inputs: tuple[str, str] | None = None) -> dict[str, int]:
    """Every table of `tables` at every time into `out` (the job's layout); rows per table.

    `store_inputs`: the crossing's (interactions, catalogue) keys in the store, which a
    SparkApplication reads in place of the step's local copies."""
    if settings.feature_engine not in ENGINES:
        raise ValueError(f"setting feature_engine is {settings.feature_engine!r}: expected one of {ENGINES}")
    knn_cap = settings.knn_item_buyers or None
    if settings.feature_engine == "spark-operator":
        return _on_the_cluster(settings, store_inputs, times, out, tables, knn_cap, run_id)
    engine = open_engine(settings.feature_engine, master=settings.spark_master,
                         memory_limit=settings.feature_engine_memory)
    try:
        return run_feature_job(engine, interactions, items, times, out, label_days=None, tables=tables,
                               knn_cap=knn_cap, progress=_report)
    finally:
        engine.close()


def _on_the_cluster(settings: Settings, store_inputs: tuple[str, str] | None, times: Sequence[pd.Timestamp],
                    out: Path, tables: Sequence[str], knn_cap: int | None, run_id: str) -> dict[str, int]:
    from shoprank.features.engine.spark_application import feature_job_arguments, submit_feature_job

    if store_inputs is None:
        raise ValueError("feature_engine spark-operator reads the crossing's tables in the store: "
                         "the step must name their keys")
    store = open_for(settings)
    run_id = re.sub(r"[^a-z0-9-]", "-", (run_id or time.strftime("%Y%m%dT%H%M%S")).lower())
    prefix = f"{ENGINE_PREFIX}/{run_id}"
    arguments = feature_job_arguments(interactions=store.uri(store_inputs[0]), items=store.uri(store_inputs[1]),
                                      at=[t.isoformat() for t in times], out=store.uri(prefix), tables=tables,
                                      label_days=0, knn_cap=knn_cap or 0)
    outcome = submit_feature_job(settings, run_id=run_id, arguments=arguments)
    for key in store.list(f"{prefix}/"):  # Spark's part files, one at a time
        if key.endswith(".parquet"):
            local = Path(out) / key.removeprefix(f"{prefix}/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(store.get_bytes(key))
    return {name: int(n) for name, n in outcome.get("rows", {}).items()}


def _files(path: Path) -> list[Path]:
    """A snapshot's parquet: one file (DuckDB) or a folder of part files (Spark)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))
    if path.exists():
        return [path]
    raise FileNotFoundError(f"{path}: the feature job wrote no such snapshot (rerun the features step)")


def snapshot_parts(out: Path, table: str, times: Sequence[pd.Timestamp],
                   excluded: frozenset[str] | set[str] = frozenset()) -> Iterator[pa.Table]:
    """The table's rows at each time, a row group at a time, in the Feast schema, without the rows of
    `excluded` users (opted out or forgotten: no personal rows for them)."""
    drop = pa.array(sorted(excluded), pa.string()) if excluded else None
    for at in times:
        for file in _files(Path(out) / table / snapshot_name(at)):
            parquet = pq.ParquetFile(file)
            for group in range(parquet.num_row_groups):
                part = conform(parquet.read_row_group(group), table, str(file))
                if drop is not None and table == "user_stats":
                    part = part.filter(pc.invert(pc.is_in(part.column("user_key"), value_set=drop)))
                yield part


def read_snapshot(out: Path, table: str, at: pd.Timestamp) -> pa.Table:
    """One small table at one time whole (the item neighbours the API serves)."""
    return pa.concat_tables(pq.read_table(file) for file in _files(Path(out) / table / snapshot_name(at)))
