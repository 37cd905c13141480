"""The feature job over frames already in memory, for callers that hold a small table anyway (the
quality harness, tests and fixtures): the frames are written to parquet and the nightly's own job
(`job.run_feature_job`, DuckDB) runs over them, so there is one path, whatever the caller.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from shoprank.features.engine import queries
from shoprank.features.engine.engines import DuckDbEngine
from shoprank.features.engine.job import run_feature_job
from shoprank.features.engine.runner import read_snapshot, snapshot_parts
from shoprank.features.engine.schema import conform


def _job(interactions: pd.DataFrame, items: pd.DataFrame | None, times: Sequence[pd.Timestamp], tables: Sequence[str],
         knn_cap: int | None, memory_limit: str, work: Path) -> Path:
    interactions[list(queries.COLUMNS["interactions"])].to_parquet(work / "interactions.parquet", index=False)
    catalogue = items if items is not None else pd.DataFrame({"item_id": pd.Series(dtype=str),
                                                              "category": pd.Series(dtype=str),
                                                              "price": pd.Series(dtype="float64")})
    catalogue[list(queries.COLUMNS["items"])].to_parquet(work / "items.parquet", index=False)
    engine = DuckDbEngine(memory_limit=memory_limit)
    try:
        run_feature_job(engine, work / "interactions.parquet", work / "items.parquet", times, work / "out",
                        label_days=None, tables=tables, knn_cap=knn_cap)
    finally:
        engine.close()
    return work / "out"


def feature_snapshots(interactions: pd.DataFrame, items: pd.DataFrame, times: Sequence[pd.Timestamp],
                      knn_cap: int | None = queries.KNN_ITEM_BUYERS,
                      memory_limit: str = "4GB") -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item feature tables stacked over `times`, in the Feast schemas (checked), each
    snapshot's rows in key order."""
    with tempfile.TemporaryDirectory(prefix="feature-job-") as scratch:
        out = _job(interactions, items, times, ("user_stats", "item_stats"), knn_cap, memory_limit, Path(scratch))
        frames = []
        for table in ("user_stats", "item_stats"):
            parts = [pa.concat_tables(snapshot_parts(out, table, [at])) for at in times]
            frames.append(pa.concat_tables([part.sort_by(part.schema.names[0]) for part in parts]).to_pandas())
    return frames[0], frames[1]


def focused_snapshots(interactions: pd.DataFrame, items: pd.DataFrame,
                      users_at: Mapping[pd.Timestamp, Sequence[str]],
                      knn_cap: int | None = queries.KNN_ITEM_BUYERS, memory_limit: str = "4GB",
                      progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User rows of only `users_at[t]` at each time t, and the whole item table at each t, stacked.

    For predictions that each fall on their own day (the next basket of every user, ~120 days on
    Ta Feng): a whole user table per day costs ~40 s here, one restricted to the day's users ~1 s, and
    each row is the one the whole table holds (`queries.user_stats`' `focus`; tested)."""
    users_out, items_out = [], []
    with tempfile.TemporaryDirectory(prefix="feature-job-") as scratch:
        work = Path(scratch)
        interactions[list(queries.COLUMNS["interactions"])].to_parquet(work / "interactions.parquet", index=False)
        items[list(queries.COLUMNS["items"])].to_parquet(work / "items.parquet", index=False)
        engine = DuckDbEngine(memory_limit=memory_limit)
        try:
            engine.register("interactions", work / "interactions.parquet")
            engine.register("items", work / "items.parquet")
            for at in tqdm(sorted(users_at), desc="snapshots", unit="day", disable=not progress):
                pd.DataFrame({"user_key": pd.Series(sorted(users_at[at]), dtype=str)}).to_parquet(
                    work / "focus.parquet", index=False)
                engine.register("focus", work / "focus.parquet")
                for table, sql, out in (
                        ("user_stats", queries.user_stats(engine.dialect, at, knn_cap, focus="focus"), users_out),
                        ("item_stats", queries.item_stats(engine.dialect, at), items_out)):
                    path = work / f"{table}.parquet"
                    engine.to_parquet(queries.stamped(sql, engine.dialect, at), path)
                    part = conform(pq.read_table(path), table, str(path))
                    out.append(part.sort_by(part.schema.names[0]))
        finally:
            engine.close()
    return pa.concat_tables(users_out).to_pandas(), pa.concat_tables(items_out).to_pandas()


def item_neighbours(interactions: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Each item's "bought together" neighbours as of `at` (item_id, neighbours), as the API serves them."""
    with tempfile.TemporaryDirectory(prefix="feature-job-") as scratch:
        out = _job(interactions, None, [at], ("item_neighbours",), None, "1GB", Path(scratch))
        return read_snapshot(out, "item_neighbours", at).select(["item_id", "neighbours"]).to_pandas()
