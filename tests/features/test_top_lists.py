"""The ranked lists' top-n (`queries.top_n_ctes`): cutting at each group's n-th best score first must
keep exactly the rows, and the order, that sorting every row keeps, ties at the cut included, on
DuckDB and on Spark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprank.features.engine.dialect import DUCKDB, SPARK
from shoprank.features.engine.engines import DuckDbEngine, SparkEngine
from shoprank.features.engine.queries import top_n_ctes

N = 3


def _scores() -> pd.DataFrame:
    """Groups built to break a careless cut: ties across the cut, scores that differ only below the
    1e-9 rounding (they tie), a group with fewer than n rows, a group of one, and random bulk."""
    rows = [(1, j, s) for j, s in enumerate([5.0, 4.0, 4.0, 4.0, 4.0, 1.0], start=10)]  # four tied at places 2-5
    rows += [(2, 30, 2.0), (2, 20, 2.0 + 1e-12), (2, 10, 2.0 - 1e-12), (2, 40, 1.0)]  # three tied at the top
    rows += [(3, 7, 0.5), (3, 8, 0.25)]  # fewer than n
    rows += [(4, 1, -3.0)]
    rng = np.random.default_rng(0)
    for g in range(5, 40):
        for j in range(rng.integers(1, 12)):
            rows.append((g, j, float(rng.integers(0, 4))))  # few distinct values: many ties
    return pd.DataFrame(rows, columns=["u", "j", "score"]).astype({"u": "int64", "j": "int64"})


def _expected(scores: pd.DataFrame) -> pd.DataFrame:
    """Every row sorted: rounded score descending, then the item ascending; the first n per group."""
    ordered = scores.assign(r=scores["score"].round(9)).sort_values(["u", "r", "j"], ascending=[True, False, True])
    ordered["pos"] = ordered.groupby("u").cumcount() + 1
    return ordered[ordered["pos"] <= N][["u", "j", "pos"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    scores = _scores()
    path = tmp_path_factory.mktemp("top") / "scores.parquet"
    scores.to_parquet(path, index=False)
    return path, scores


def _run(engine, dialect, scores_path: Path, out: Path) -> pd.DataFrame:
    engine.register("scores", scores_path)
    sql = f"WITH {top_n_ctes(dialect, 'best', 'scores', 'u', 'j', 'score', N)} SELECT u, j, pos FROM best"
    engine.to_parquet(sql, out)
    got = pd.read_parquet(out)
    return got.sort_values(["u", "pos"]).reset_index(drop=True).astype("int64")


def test_the_cut_keeps_the_rows_and_order_of_a_full_sort_on_duckdb(scores_file, tmp_path):
    path, scores = scores_file
    engine = DuckDbEngine(memory_limit="256MB")
    try:
        got = _run(engine, DUCKDB, path, tmp_path / "top.parquet")
    finally:
        engine.close()
    pd.testing.assert_frame_equal(got, _expected(scores))
    # the hand-built groups, spelled out: group 1 keeps 5.0 and the two lowest ids of the tied 4.0s;
    # group 2's three near-equal scores tie, so they go by id
    assert got[got["u"] == 1]["j"].tolist() == [10, 11, 12]
    assert got[got["u"] == 2]["j"].tolist() == [10, 20, 30]
    assert got[got["u"] == 3]["j"].tolist() == [7, 8] and got[got["u"] == 4]["j"].tolist() == [1]


def test_the_cut_keeps_the_rows_and_order_of_a_full_sort_on_spark(scores_file, tmp_path):
    from tests.services import require

    require("java", "run Spark in local mode")
    path, scores = scores_file
    engine = SparkEngine("local[1]")
    try:
        got = _run(engine, SPARK, path, tmp_path / "top")
    finally:
        engine.close()
    pd.testing.assert_frame_equal(got, _expected(scores))
