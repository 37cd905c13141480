"""The fast Redis loader writes Feast's own online layout: byte for byte what `materialize` writes
for the same window (every entity's hash, every feature field and its timestamp), read back equal
through `get_online_features`, with the materialisation interval in the registry."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
import redis

from shoprank.features import store as feast_store
from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.redis_loader import encode_column
from shoprank.features.snapshots import snapshot_times
from shoprank.settings import load_settings
from tests.conftest import redis_server
from tests.features.test_snapshots import ITEMS, _interactions


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


def _dump(url: str) -> dict[bytes, dict[bytes, bytes]]:
    client = redis.Redis.from_url(url)
    return {key: client.hgetall(key) for key in client.keys("*")}


def test_the_loader_writes_what_feast_materialize_writes(home, redis_url, tmp_path):
    import pyarrow.parquet as pq

    from shoprank.features.definitions import feature_objects
    from shoprank.features.redis_loader import load_view
    from shoprank.layout import ITEM_STATS_KEY, USER_STATS_KEY

    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    users.loc[users.index[0], "user_avg_price"] = None  # nulls travel as Feast writes them
    by_feast, by_loader = f"{redis_url}/1", f"{redis_url}/2"
    start, end = times[-1] - pd.Timedelta(days=1), times[-1] + pd.Timedelta(seconds=1)
    dumps = {}
    for url, fast in ((by_feast, False), (by_loader, True)):
        settings = load_settings(feast_online_store=url, feast_registry=str(tmp_path / f"registry-{fast}.db"))
        feast_store.write_offline_sources(settings, users, items)
        fs = feast_store.feature_store(settings)
        fs.apply(feature_objects(settings.feast_offline, None))
        for view, key in (("user_stats", USER_STATS_KEY), ("item_stats", ITEM_STATS_KEY)):
            if fast:
                table = pq.read_table(f"{settings.feast_offline}/{key}")
                stamps = table.column("event_timestamp")
                table = table.filter(pa.compute.and_(pa.compute.greater_equal(stamps, pa.scalar(start)),
                                                     pa.compute.less(stamps, pa.scalar(end))))
                # batches of 2: every batch after the first is a slice inside the table
                assert load_view(fs, view, table, start.to_pydatetime(), end.to_pydatetime(), batch_rows=2) > 2
            else:
                fs.materialize(start.to_pydatetime(), end.to_pydatetime(), feature_views=[view])
        dumps[fast] = _dump(url)
        intervals = feast_store.feature_store(settings).get_feature_view("user_stats").materialization_intervals
        assert intervals and intervals[-1][1] == end.to_pydatetime()
    assert dumps[True] == dumps[False] and len(dumps[True]) > 5
    loaded = load_settings(feast_online_store=by_loader, feast_registry=str(tmp_path / "registry-True.db"))
    online = feast_store.online_features(loaded, "u1", ["a", "z"]).set_index("item_id")
    assert "z" in online.loc["a", "user_top_items"] and online.loc["z", "item_pop_7d"] == 1


@pytest.mark.parametrize(("values", "dtype"), [
    ([1.5, None, -0.0, 1e300], "Float64"), ([0, 1, -1, 2**40, None], "Int64"), (["a", "", "é", None], "String"),
    ([[1.0, 2.5], [], None], "Array(Float64)"), ([[0, 300, -5], [], None], "Array(Int64)"),
    ([[1, 2], [], None, [127]], "Array(Int64)"), ([["x", "yé"], [], None, [""]], "Array(String)"),
    ([["a" * 200], ["b"]], "Array(String)"),
])
def test_each_column_encodes_as_feasts_own_conversion(values, dtype):
    from feast.type_map import python_values_to_proto_values
    from feast.types import Array, Float64, Int64, String

    types = {"Float64": Float64, "Int64": Int64, "String": String}
    feast_type = Array(types[dtype[6:-1]]) if dtype.startswith("Array") else types[dtype]
    expected = [v.SerializeToString() for v in python_values_to_proto_values(values, feast_type.to_value_type())]
    assert encode_column(pa.array(values), feast_type) == expected
    assert encode_column(pa.array(values).slice(1), feast_type) == expected[1:]  # a batch inside a table


def test_an_incremental_refresh_into_redis_loads_only_the_new_snapshot(home, redis_url, tmp_path):
    """The hourly refresh's path: a newer snapshot appended to the offline sources is loaded from
    where the last materialisation ended, and the registry's history moves on with it."""
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    settings = load_settings(feast_online_store=f"{redis_url}/3", feast_registry=str(tmp_path / "registry.db"))
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    feast_store.apply_and_materialise(settings, times[-1])
    later = times[-1] + pd.Timedelta(hours=1)
    more = _interactions()
    more = pd.concat([more, more.tail(1).assign(user_key="u-new", event_time=later - pd.Timedelta(minutes=5))])
    new_users, new_items = feature_snapshots(more, ITEMS, [later])
    feast_store.append_offline_snapshot(settings, new_users, new_items)
    fs = feast_store.materialise_incremental(settings, later)
    ends = [view.materialization_intervals[-1][1] for view in fs.list_feature_views() if view.materialization_intervals]
    assert ends and all(pd.Timestamp(e) == later + pd.Timedelta(seconds=1) for e in ends)
    online = feast_store.online_features(settings, "u-new", ["a"])
    assert online.loc[0, "user_n_interactions"] == 1


@pytest.mark.parametrize("kind", ["Float64", "Int64", "String"])
def test_random_lists_of_every_length_encode_as_feast_does(kind):
    """Lists long enough for two- and three-byte lengths, empty ones, null rows, strings past the
    one-byte fast path, and a slice: the loader's bytes are Feast's, whatever the shape."""
    import random

    from feast.type_map import python_values_to_proto_values
    from feast.types import Array, Float64, Int64, String

    rng = random.Random(5)
    make = {"Float64": lambda: rng.uniform(-1e6, 1e6), "Int64": lambda: rng.randrange(0, 120),
            "String": lambda: "x" * rng.randrange(0, 30) + str(rng.random())}[kind]
    rows = [None if rng.random() < 0.05 else [make() for _ in range(rng.choice([0, 1, 5, 40, 300, 2100]))]
            for _ in range(400)]
    if kind == "String":
        rows[3] = ["y" * 200]  # one long id: its column takes the element-by-element path
    feast_type = Array({"Float64": Float64, "Int64": Int64, "String": String}[kind])
    expected = [v.SerializeToString() for v in python_values_to_proto_values(rows, feast_type.to_value_type())]
    assert encode_column(pa.array(rows), feast_type) == expected
    assert encode_column(pa.array(rows).slice(77, 200), feast_type) == expected[77:277]
