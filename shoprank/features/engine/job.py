"""The feature job: every table of `queries.py` at every snapshot time, written as parquet by one engine.

    python -m shoprank.features.engine.job --engine duckdb --interactions I --items C --end 2001-02-28 \
        --snapshots 6 --out DIR
    spark-submit shoprank/features/engine/job.py --engine spark --interactions s3a://... --out s3a://...

Layout: `<out>/<table>/at=<YYYY-MM-DDTHHMMSS>.parquet` (one file from DuckDB, one folder of parts
from Spark), each row carrying its `event_timestamp` (the snapshot time), the column Feast's
point-in-time join reads; `<out>/labels/...` holds the (user, item) purchases of the label window
after each snapshot whose window lies inside the data. A snapshot is written to a temporary name
and renamed (DuckDB) or committed by Spark's output protocol, so a crash leaves whole snapshots or
none, and a rerun overwrites.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from shoprank.features.engine import queries
from shoprank.features.engine.engines import Engine, open_engine
from shoprank.features.snapshots import snapshot_times


def snapshot_name(at: pd.Timestamp) -> str:
    return f"at={at.tz_convert('UTC').strftime('%Y-%m-%dT%H%M%S')}.parquet"


def _join(out: str, *parts: str) -> str:
    return "/".join([out.rstrip("/"), *parts])  # an s3a:// URL is not a Path


def run_feature_job(engine: Engine, interactions: str | Path, items: str | Path, times: Sequence[pd.Timestamp],
                    out: str | Path, label_days: int | None = 7, data_end: pd.Timestamp | None = None,
                    tables: Sequence[str] = tuple(queries.QUERIES), knn_cap: int | None = queries.KNN_ITEM_BUYERS,
                    progress: Callable[[str, pd.Timestamp, int, float], None] | None = None) -> dict[str, int]:
    """Write every table at every time; rows written per table. Labels only where [t, t + label_days)
    ends by `data_end` (default: the last snapshot time), as the training set uses them. The item
    neighbours are written at the last time only: the API serves the newest, nothing reads older ones.
    `knn_cap`: the approximate user-kNN's per-item cap (None: exact; see `queries._knn_ctes`)."""
    unknown = [name for name in tables if name not in queries.QUERIES]
    if unknown:
        raise ValueError(f"unknown feature tables {unknown}: the job computes {list(queries.QUERIES)}")
    for name, path in (("interactions", interactions), ("items", items)):
        engine.register(name, path)
        present = set(engine.columns(name))
        missing = [c for c in queries.COLUMNS[name] if c not in present]
        if missing:
            raise ValueError(f"{name} ({path}) lacks the columns {missing}: the feature job reads "
                             f"{list(queries.COLUMNS[name])}")
    rows: dict[str, int] = {}
    data_end = data_end if data_end is not None else max(times)
    for at in times:
        work = {name: queries.table_query(name, engine.dialect, at, knn_cap) for name in tables
                if name != "item_neighbours" or at == max(times)}
        if label_days and at + pd.Timedelta(days=label_days) <= data_end:
            work["labels"] = queries.labels(engine.dialect, at, label_days)
        for name, sql in work.items():
            began = time.perf_counter()
            n = engine.to_parquet(queries.stamped(sql, engine.dialect, at), _join(str(out), name, snapshot_name(at)))
            rows[name] = rows.get(name, 0) + n
            if progress is not None:
                progress(name, at, n, time.perf_counter() - began)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument("--master", default=None, help="Spark master (default: the one spark-submit set, "
                                                       "else local[*])")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB's memory limit (it spills beyond it)")
    parser.add_argument("--interactions", required=True, help="pseudonymised interactions: parquet file or folder")
    parser.add_argument("--items", required=True, help="catalogue: parquet file or folder")
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--end", help="the last snapshot's day (snapshots every 7 days before)")
    when.add_argument("--at", action="append", help="a snapshot time (ISO 8601, UTC); repeat for each")
    parser.add_argument("--snapshots", type=int, default=6, help="with --end: how many snapshots")
    parser.add_argument("--tables", default=",".join(queries.QUERIES),
                        help=f"comma-separated tables to compute (default: all of {', '.join(queries.QUERIES)})")
    parser.add_argument("--knn-cap", type=int, default=queries.KNN_ITEM_BUYERS,
                        help="the approximate user-kNN's per-item cap; 0: exact")
    parser.add_argument("--label-days", type=int, default=7)
    parser.add_argument("--out", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.at:
        times = sorted(pd.Timestamp(at).tz_localize("UTC") if pd.Timestamp(at).tzinfo is None
                       else pd.Timestamp(at).tz_convert("UTC") for at in args.at)
    else:
        times = snapshot_times(pd.Timestamp(args.end, tz="UTC"), args.snapshots)
    end = max(times)
    engine = open_engine(args.engine, master=args.master, memory_limit=args.memory_limit)

    def report(name: str, at: pd.Timestamp, n: int, seconds: float) -> None:
        print(f"{name:<16} {at:%Y-%m-%d}  {n:>10,} rows  {seconds:6.1f} s", file=sys.stderr, flush=True)

    try:
        rows = run_feature_job(engine, args.interactions, args.items, times, args.out, args.label_days, end,
                               tables=[t for t in args.tables.split(",") if t], knn_cap=args.knn_cap or None,
                               progress=report)
    finally:
        engine.close()
    print(json.dumps({"engine": args.engine, "rows": rows, "snapshots": [str(t) for t in times]}))


if __name__ == "__main__":
    main()
