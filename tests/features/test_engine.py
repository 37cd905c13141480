"""The feature job written once in SQL: DuckDB and Spark give the same rows, and both give the pandas
reference's features (tests/reference/), on real Ta Feng data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shoprank.features.engine import queries
from shoprank.features.engine.engines import DuckDbEngine, SparkEngine, spark_conf
from shoprank.features.engine.job import run_feature_job, snapshot_name
from shoprank.features.snapshots import snapshot_times
from tests.reference.compute import item_snapshot, user_snapshot

END = pd.Timestamp("2001-02-15", tz="UTC")
TIMES = snapshot_times(END, 2)  # 2001-02-08 and 2001-02-15; labels for the first only


@pytest.fixture(scope="module")
def slice_files(tmp_path_factory, tafeng_events) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    """Every 16th Ta Feng customer as pseudonymised-shaped interactions, and the catalogue."""
    from shoprank.data.sources import open_source
    from tests.conftest import TAFENG_ZIP

    events = tafeng_events[tafeng_events["user_id"].str[-3:].astype(int) % 16 == 0]
    interactions = pd.DataFrame({"user_key": events["user_id"].astype(str), "item_id": events["item_id"].astype(str),
                                 "event_type": events["event_type"],
                                 # microseconds, as the pipeline stores them (Spark cannot read ns parquet)
                                 "event_time": events["event_time"].astype("datetime64[us, UTC]"),
                                 "price": events["price"].astype("float64"),
                                 "quantity": events["quantity"].astype("int64")}).reset_index(drop=True)
    items = open_source("tafeng", TAFENG_ZIP).items()[["item_id", "category", "price"]]
    folder = tmp_path_factory.mktemp("engine-input")
    interactions.to_parquet(folder / "interactions.parquet", index=False)
    items.to_parquet(folder / "items.parquet", index=False)
    return folder / "interactions.parquet", folder / "items.parquet", interactions, items


@pytest.fixture(scope="module")
def duckdb_out(slice_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("duckdb-features")
    engine = DuckDbEngine(memory_limit="1GB")
    try:
        run_feature_job(engine, slice_files[0], slice_files[1], TIMES, out, label_days=7, knn_cap=None)
    finally:
        engine.close()
    return out


def _read(out: Path, table: str, at: pd.Timestamp) -> pd.DataFrame:
    frame = pd.read_parquet(out / table / snapshot_name(at))
    return frame.sort_values(queries.KEYS[table]).reset_index(drop=True)


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame, what: str) -> None:
    assert list(left.columns) == list(right.columns), what
    assert len(left) == len(right) > 0, what
    for col in left.columns:
        a, b = left[col].to_numpy(), right[col].to_numpy()
        if col == "event_timestamp":
            assert (pd.to_datetime(a, utc=True) == pd.to_datetime(b, utc=True)).all(), f"{what}: {col}"
        elif a.dtype.kind in "fiu":
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{what}: {col}")
        elif len(a) and isinstance(a[0], np.ndarray | list):
            for x, y in zip(a, b, strict=True):
                x, y = np.asarray(x), np.asarray(y)
                if x.dtype.kind in "fiu":
                    np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-9, err_msg=f"{what}: {col}")
                else:
                    assert x.tolist() == y.tolist(), f"{what}: {col}"
        else:
            assert [None if v is None else str(v) for v in a] == [None if v is None else str(v) for v in b], \
                f"{what}: {col}"


def test_the_embedded_engine_computes_the_reference_features(slice_files, duckdb_out):
    """Every feature, lists included (co-occurrence and exact user-kNN), equal to the pandas reference,
    ranked lists in the same order under the one tie rule (queries.py's docstring)."""
    _, _, interactions, items = slice_files
    for at in TIMES:
        expected = item_snapshot(interactions, items, at).sort_values("item_id").reset_index(drop=True)
        got = _read(duckdb_out, "item_stats", at)
        _assert_same_rows(got[list(expected.columns)], expected, f"item_stats at {at:%Y-%m-%d}")
        users = user_snapshot(interactions, items, at).sort_values("user_key").reset_index(drop=True)
        sql = _read(duckdb_out, "user_stats", at)
        assert list(sql.columns) == [c for c in users.columns if c != "event_timestamp"] + ["event_timestamp"]
        _assert_same_rows(sql[list(users.columns)], users, f"user_stats at {at:%Y-%m-%d}")
    assert sum(len(v) for v in sql["user_knn_items"]) and sum(len(v) for v in sql["user_cooc_items"])


def test_the_approximate_knn_finds_most_of_the_exact_lists(slice_files, duckdb_out):
    """The per-item cap (queries.KNN_ITEM_BUYERS) bounds the pairs a popular item adds; on Ta Feng its
    lists keep most of the exact ones (make bench-engines measures it on the whole data)."""
    from shoprank.features.engine.frames import feature_snapshots

    _, _, interactions, items = slice_files
    exact = _read(duckdb_out, "user_stats", TIMES[-1]).set_index("user_key")["user_knn_items"]
    capped = feature_snapshots(interactions, items, [TIMES[-1]], knn_cap=20)[0].set_index("user_key")["user_knn_items"]
    recall = np.mean([len(set(capped[u]) & set(v)) / len(v) for u, v in exact.items() if len(v)])
    assert 0.5 < recall < 1.0  # a cap of 20 on a slice: approximate, and still close


def test_labels_are_the_purchases_of_the_week_after_the_snapshot(slice_files, duckdb_out):
    from shoprank.features.training_set import truth_sets

    _, _, interactions, _ = slice_files
    labels = _read(duckdb_out, "labels", TIMES[0])
    truth = truth_sets(interactions, TIMES[0], 7)
    assert set(zip(labels["user_key"], labels["item_id"], strict=True)) == {
        (user, item) for user, bought in truth.items() for item in bought}
    assert not (duckdb_out / "labels" / snapshot_name(TIMES[-1])).exists()  # its week is past the data


@pytest.mark.timeout(900)
def test_spark_writes_the_same_feature_rows_as_the_embedded_engine(slice_files, duckdb_out, tmp_path):
    from tests.services import require

    require("java", "run Spark in local mode")
    from pyspark import SparkContext

    engine = SparkEngine("local[2]")
    jvm = SparkContext._gateway.proc
    try:
        rows = run_feature_job(engine, slice_files[0], slice_files[1], TIMES, tmp_path, label_days=7, knn_cap=None)
    finally:
        engine.close()
    assert jvm.poll() is not None  # the JVM it launched is gone with it, not idling for the rest of the process
    assert set(rows) == {*queries.QUERIES, "labels"}
    for table in (*queries.QUERIES, "labels"):
        for at in TIMES:
            if (table == "labels" and at == TIMES[-1]) or (table == "item_neighbours" and at != TIMES[-1]):
                continue  # labels need the week after; the neighbours are the newest time's only
            _assert_same_rows(_read(tmp_path, table, at), _read(duckdb_out, table, at), f"{table} at {at:%Y-%m-%d}")


def test_a_missing_column_is_named_with_its_file_and_nothing_is_written(slice_files, tmp_path):
    broken = tmp_path / "interactions.parquet"
    slice_files[2].drop(columns=["quantity"]).to_parquet(broken, index=False)
    engine = DuckDbEngine(memory_limit="1GB")
    try:
        with pytest.raises(ValueError, match=r"interactions \(.*\) lacks the columns \[.quantity.\]"):
            run_feature_job(engine, broken, slice_files[1], TIMES, tmp_path / "out")
    finally:
        engine.close()
    assert not (tmp_path / "out").exists()


def test_a_query_that_fails_halfway_leaves_the_old_snapshot_and_no_partial_file(slice_files, duckdb_out, tmp_path):
    """The query dies after it has streamed rows out (a runtime error on a late row): the file it was
    replacing is the old one, whole, and nothing half-written is left beside it."""
    out = tmp_path / "out"
    shutil.copytree(duckdb_out, out)
    target = out / "item_stats" / snapshot_name(TIMES[-1])
    old = _read(out, "item_stats", TIMES[-1])
    engine = DuckDbEngine(memory_limit="1GB")
    try:
        engine.register("interactions", slice_files[0])
        dies_late = ("WITH kept AS (SELECT * FROM interactions) "
                     "SELECT user_key, CASE WHEN row_number() OVER () > 50000 THEN error('killed halfway') "
                     "ELSE item_id END AS item_id FROM kept")
        with pytest.raises(Exception, match="killed halfway"):
            engine.to_parquet(dies_late, target)
        # the CTE's temporary table went with the failed query: the next one starts with nothing held
        assert engine.con.execute("SELECT COUNT(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
    finally:
        engine.close()
    assert sorted(p.name for p in target.parent.iterdir()) == [snapshot_name(t) for t in TIMES]
    _assert_same_rows(_read(out, "item_stats", TIMES[-1]), old, "untouched snapshot")


def test_only_a_local_spark_pins_the_driver_to_loopback():
    """On the cluster spark-submit sets the driver's address: a loopback one would strand the executors."""
    local, cluster = spark_conf("local[2]"), spark_conf(None)
    assert local["spark.driver.host"] == "127.0.0.1" and local["spark.sql.shuffle.partitions"] == "8"
    assert not {"spark.driver.host", "spark.driver.bindAddress", "spark.sql.shuffle.partitions"} & set(cluster)
    assert local["spark.sql.session.timeZone"] == cluster["spark.sql.session.timeZone"] == "UTC"


def test_a_snapshot_focused_on_a_few_users_holds_exactly_their_rows_of_the_whole_table(slice_files, duckdb_out):
    """The per-day snapshots of the next-basket evaluation compute only that day's users; their lists
    still come from everyone's baskets. Each focused row must be the whole table's row, and no other
    user may appear (a neighbour's row leaking in, or a list cut to the focus users' own baskets,
    would both fail here)."""
    from shoprank.features.engine.frames import focused_snapshots
    from shoprank.features.engine.runner import snapshot_parts

    _, _, interactions, items = slice_files
    whole_users, whole_items = (pa.concat_tables([part.sort_by(part.schema.names[0])
                                                  for at in TIMES for part in snapshot_parts(duckdb_out, table, [at])])
                                .to_pandas() for table in ("user_stats", "item_stats"))
    rng = np.random.default_rng(0)
    users_at = {at: sorted(rng.choice(whole_users[whole_users["event_timestamp"] == at]["user_key"].to_numpy(),
                                      25, replace=False).tolist()) + ["nobody-at-all"] for at in TIMES}
    users, items_at = focused_snapshots(interactions, items, users_at, knn_cap=None, progress=False)
    for at in TIMES:
        got = users[users["event_timestamp"] == at].sort_values("user_key").reset_index(drop=True)
        want = whole_users[(whole_users["event_timestamp"] == at) & whole_users["user_key"].isin(users_at[at])]
        assert set(got["user_key"]) == set(users_at[at]) - {"nobody-at-all"}
        _assert_same_rows(got, want.sort_values("user_key").reset_index(drop=True), f"focused at {at:%Y-%m-%d}")
        assert sum(len(v) for v in got["user_cooc_items"]) and sum(len(v) for v in got["user_knn_items"])
    pd.testing.assert_frame_equal(items_at.reset_index(drop=True), whole_items.reset_index(drop=True))
