"""The features step's side of the feature job: the engine chosen by settings alone, the output held
to the Feast schemas before anything is published, opted-out shoppers' rows dropped on the way, and
the cluster's SparkApplication path reading the crossing in the store and its output back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.features.engine import runner
from shoprank.features.engine.job import snapshot_name
from shoprank.features.engine.schema import conform, feast_schema
from shoprank.settings import load_settings
from shoprank.storage import open_for
from tests.features.test_snapshots import ITEMS, T, _interactions


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    _interactions().to_parquet(tmp_path / "interactions.parquet", index=False)
    ITEMS.to_parquet(tmp_path / "items.parquet", index=False)
    return tmp_path / "interactions.parquet", tmp_path / "items.parquet"


def test_the_settings_pick_the_engine_and_its_output_streams_in_the_feast_schema(home, inputs, tmp_path):
    rows = runner.compute_tables(load_settings(), *inputs, [T], tmp_path / "out")
    assert rows["user_stats"] == 2 and rows["item_stats"] == len(ITEMS) and rows["item_neighbours"] >= 0
    parts = list(runner.snapshot_parts(tmp_path / "out", "user_stats", [T]))
    assert all(part.schema.equals(feast_schema("user_stats")) for part in parts)
    assert sorted(pa.concat_tables(parts).column("user_key").to_pylist()) == ["u1", "u2"]
    dropped = pa.concat_tables(runner.snapshot_parts(tmp_path / "out", "user_stats", [T], {"u1"}))
    assert dropped.column("user_key").to_pylist() == ["u2"]  # opted out or forgotten: no row
    with pytest.raises(ValueError, match="feature_engine is 'pandas'"):
        runner.compute_tables(load_settings(feature_engine="pandas"), *inputs, [T], tmp_path / "other")


def test_a_snapshot_the_job_did_not_write_is_named(home, tmp_path):
    with pytest.raises(FileNotFoundError, match="at=2024-02-01T000000.parquet"):
        list(runner.snapshot_parts(tmp_path, "user_stats", [T]))


def test_a_retyped_or_missing_feature_is_refused_with_file_column_and_types():
    good = pa.table({"item_id": ["a"], "event_timestamp": pa.array([T.to_pydatetime().replace(tzinfo=None)],
                                                                  pa.timestamp("us")),
                     **{f.name: pa.array([0], pa.int32()) if f.type == pa.int64() else pa.array(
                         [0.5] if f.type == pa.float64() else ["x"], f.type)
                        for f in feast_schema("item_stats") if f.name not in ("item_id", "event_timestamp")}})
    fixed = conform(good, "item_stats", "part.parquet")
    assert fixed.schema.equals(feast_schema("item_stats"))  # int32 widened, a naive time read as UTC
    assert fixed.column("event_timestamp")[0].as_py() == T.to_pydatetime()
    with pytest.raises(ValueError, match=r"part\.parquet: item_stats\.item_price is string"):
        conform(good.set_column(good.schema.get_field_index("item_price"), "item_price", pa.array(["1.0"])),
                "item_stats", "part.parquet")
    with pytest.raises(ValueError, match=r"lack the features \['item_pop_7d'\]"):
        conform(good.drop(["item_pop_7d"]), "item_stats", "part.parquet")
    with pytest.raises(ValueError, match="rows without"):
        conform(good.set_column(0, "item_id", pa.array([None], pa.string())), "item_stats", "part.parquet")


def test_on_the_cluster_the_job_reads_the_crossing_in_the_store_and_its_output_comes_back(home, tmp_path,
                                                                                          monkeypatch):
    """The SparkApplication is the Kubernetes part (spark_application.py's tests); here the step's
    part: the arguments it asks for, and the output it reads back from the store, part by part."""
    import shoprank.features.engine.spark_application as spark_application

    settings = load_settings(feature_engine="spark-operator", spark_image="img@sha256:" + "0" * 64)
    store = open_for(settings)
    asked = {}

    def submitted(settings_, *, run_id, arguments, **_):
        asked.update(run_id=run_id, arguments=arguments)
        out = arguments[arguments.index("--out") + 1]
        prefix = out.removeprefix(store.uri(""))
        # what Spark leaves: a folder of parts per snapshot, with its _SUCCESS marker
        part = conform(pa.table({"user_key": ["u9"], "event_timestamp": pa.array([T.to_pydatetime()]),
                                 **{f.name: pa.nulls(1, f.type) for f in feast_schema("user_stats")
                                    if f.name not in ("user_key", "event_timestamp")}}), "user_stats", "x")
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink)
        store.put_bytes(f"{prefix}/user_stats/{snapshot_name(T)}/part-00000.parquet", sink.getvalue().to_pybytes())
        store.put_bytes(f"{prefix}/user_stats/{snapshot_name(T)}/_SUCCESS", b"")
        return {"state": "COMPLETED", "rows": {"user_stats": 1}}

    monkeypatch.setattr(spark_application, "submit_feature_job", submitted)
    rows = runner.compute_tables(settings, "unused", "unused", [T], tmp_path / "out", tables=("user_stats",),
                                 run_id="20240201T0000-Nightly", store_inputs=("features/crossing/x/i.parquet",
                                                                               "features/crossing/x/c.parquet"))
    assert rows == {"user_stats": 1}
    args = asked["arguments"]
    assert args[args.index("--interactions") + 1] == store.uri("features/crossing/x/i.parquet")
    assert args[args.index("--tables") + 1] == "user_stats" and args[args.index("--label-days") + 1] == "0"
    assert asked["run_id"] == "20240201t0000-nightly"
    users = pa.concat_tables(runner.snapshot_parts(tmp_path / "out", "user_stats", [T]))
    assert users.column("user_key").to_pylist() == ["u9"]
    with pytest.raises(ValueError, match="must name their keys"):
        runner.compute_tables(settings, "unused", "unused", [T], tmp_path / "again")


def test_the_job_cli_takes_snapshot_times_and_tables(inputs, tmp_path, capsys):
    from shoprank.features.engine.job import main

    main(["--interactions", str(inputs[0]), "--items", str(inputs[1]), "--at", "2024-02-01T00:00:00",
          "--tables", "item_stats", "--out", str(tmp_path / "cli"), "--label-days", "0"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == {"item_stats": len(ITEMS)}
    assert pd.read_parquet(tmp_path / "cli" / "item_stats" / snapshot_name(T)).shape[0] == len(ITEMS)
    with pytest.raises(ValueError, match="unknown feature tables"):
        main(["--interactions", str(inputs[0]), "--items", str(inputs[1]), "--at", "2024-02-01",
              "--tables", "user_features", "--out", str(tmp_path / "bad")])
