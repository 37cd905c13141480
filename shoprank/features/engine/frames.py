"""The feature job over frames already in memory: the same SQL on DuckDB, for callers that hold a
small table anyway (the hourly refresh's crossing, the quality harness, tests and fixtures).

The nightly runs the job over files (`job.run_feature_job`), so nothing there holds the events in
Python; this is the same queries with the frames registered as the `interactions` and `items` views.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

from shoprank.features.engine import queries
from shoprank.features.engine.dialect import DUCKDB
from shoprank.features.engine.engines import DuckDbEngine
from shoprank.features.engine.schema import conform


def feature_snapshots(interactions: pd.DataFrame, items: pd.DataFrame, times: Sequence[pd.Timestamp],
                      knn_cap: int | None = queries.KNN_ITEM_BUYERS,
                      memory_limit: str = "4GB") -> tuple[pd.DataFrame, pd.DataFrame]:
    """User and item feature tables stacked over `times`, in the Feast schemas (checked), each
    snapshot's rows in key order."""
    engine = DuckDbEngine(memory_limit=memory_limit)
    try:
        engine.con.register("interactions", interactions[list(queries.COLUMNS["interactions"])])
        engine.con.register("items", items[list(queries.COLUMNS["items"])])
        parts: dict[str, list[pa.Table]] = {"user_stats": [], "item_stats": []}
        for at in times:
            for table in parts:
                result = engine.con.sql(queries.stamped(queries.table_query(table, DUCKDB, at, knn_cap), DUCKDB, at))
                rows = conform(result.to_arrow_table(), table, f"the {table} query at {at}")
                parts[table].append(rows.sort_by(rows.schema.names[0]))  # by key: the same order every run
    finally:
        engine.close()
    users, item_rows = (pa.concat_tables(parts[t]).to_pandas() for t in ("user_stats", "item_stats"))
    return users, item_rows


def item_neighbours(interactions: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Each item's "bought together" neighbours as of `at` (item_id, neighbours), as the API serves them."""
    engine = DuckDbEngine(memory_limit="1GB")
    try:
        engine.con.register("interactions", interactions[list(queries.COLUMNS["interactions"])])
        result = engine.con.sql(queries.item_neighbours(DUCKDB, at)).to_arrow_table()
    finally:
        engine.close()
    return result.select(["item_id", "neighbours"]).to_pandas()
