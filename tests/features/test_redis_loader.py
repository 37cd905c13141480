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
from shoprank.layout import ITEM_STATS_KEY, USER_STATS_KEY
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


def _with_edge_values(users: pd.DataFrame) -> pd.DataFrame:
    """The newest snapshot's u2 and u3 rows with the values an encoder gets wrong: unicode, ids past
    a one-byte length, a list of 20,000 doubles (three-byte lengths), negative and 2**40 ints, a
    NaN and a null scalar, an empty list, a null list, nulls inside lists."""
    users = users.copy()
    newest = users["event_timestamp"] == users["event_timestamp"].max()
    u2 = users.index[newest & (users["user_key"] == "u2")][0]
    u3 = users.index[newest & (users["user_key"] == "u3")][0]
    edits = {u2: {"user_top_items": ["é", "日本語", "x" * 200, ""],
                  "user_top_item_scores": [i / 7 for i in range(20_000)],
                  "user_top_item_counts": [-5, 0, 2**40, 127, 128], "user_n_purchases": -7,
                  "user_days_since_last": float("nan")},
             u3: {"user_top_items": [], "user_top_item_scores": None, "user_top_categories": ["a", None],
                  "user_top_item_days": [1.5, None], "user_avg_price": None}}
    for row, values in edits.items():
        for column, value in values.items():
            users.at[row, column] = value
    return users


def _window(settings, key: str, start: pd.Timestamp, end: pd.Timestamp) -> pa.Table:
    import pyarrow.parquet as pq

    table = pq.read_table(f"{settings.feast_offline}/{key}")
    stamps = table.column("event_timestamp")
    return table.filter(pa.compute.and_(pa.compute.greater_equal(stamps, pa.scalar(start)),
                                        pa.compute.less(stamps, pa.scalar(end))))


def _applied(url: str, registry, users: pd.DataFrame, items: pd.DataFrame, ttl: int | None = None):
    """Settings and a FeatureStore over `url` with the offline sources written and the views applied."""
    from shoprank.features.definitions import feature_objects

    settings = load_settings(feast_online_store=url, feast_registry=str(registry))
    feast_store.write_offline_sources(settings, users, items)
    fs = feast_store.feature_store(settings)
    fs.config.online_store.key_ttl_seconds = ttl
    fs.apply(feature_objects(settings.feast_offline, None))
    return settings, fs


VIEWS = (("user_stats", USER_STATS_KEY), ("item_stats", ITEM_STATS_KEY))


def test_the_loader_writes_what_feast_materialize_writes(home, redis_url, tmp_path):
    from shoprank.features.redis_loader import load_view

    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    users = _with_edge_values(users)
    by_feast, by_loader = f"{redis_url}/1", f"{redis_url}/2"
    start, end = times[-1] - pd.Timedelta(days=1), times[-1] + pd.Timedelta(seconds=1)
    dumps = {}
    for url, fast in ((by_feast, False), (by_loader, True)):
        settings, fs = _applied(url, tmp_path / f"registry-{fast}.db", users, items)
        for view, key in VIEWS:
            if fast:
                # batches of 2: every batch after the first is a slice inside the table
                table = _window(settings, key, start, end)
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
    edge = feast_store.online_features(loaded, "u2", ["a"]).iloc[0]
    assert list(edge["user_top_items"]) == ["é", "日本語", "x" * 200, ""]
    assert len(edge["user_top_item_scores"]) == 20_000


def test_a_key_ttl_expires_every_row_as_feasts_materialize_sets_it(home, redis_url, tmp_path):
    from shoprank.features.redis_loader import load_view

    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 2)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    start, end = times[-1] - pd.Timedelta(days=1), times[-1] + pd.Timedelta(seconds=1)
    dumps, ttls = {}, {}
    for url, fast in ((f"{redis_url}/4", False), (f"{redis_url}/5", True)):
        settings, fs = _applied(url, tmp_path / f"registry-{fast}.db", users, items, ttl=3600)
        for view, key in VIEWS:
            if fast:
                load_view(fs, view, _window(settings, key, start, end), start.to_pydatetime(), end.to_pydatetime())
            else:
                fs.materialize(start.to_pydatetime(), end.to_pydatetime(), feature_views=[view])
        dumps[fast] = _dump(url)
        client = redis.Redis.from_url(url)
        ttls[fast] = {client.ttl(key) for key in client.keys("*")}
    assert dumps[True] == dumps[False] and len(dumps[True]) > 3
    assert all(3500 < ttl <= 3600 for ttl in ttls[True] | ttls[False])


def _many_users(settings, start: pd.Timestamp, end: pd.Timestamp, rows: int) -> pa.Table:
    """`rows` copies of the window's first user row, each under its own key."""
    table = _window(settings, USER_STATS_KEY, start, end)
    table = table.take([0] * rows)
    keys = pa.array([f"user-{i}" for i in range(rows)], table.schema.field("user_key").type)
    return table.set_column(table.schema.get_field_index("user_key"), "user_key", keys)


def test_a_write_redis_refuses_midway_raises_naming_the_view_and_row_and_records_no_interval(home, tmp_path):
    """Redis at its memory limit (noeviction) refuses the writes past it: the load stops with the
    view and the first refused row, and the registry keeps no interval, so the refresh retries."""
    from shoprank.features.redis_loader import LoadError, load_view

    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 2)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    users["user_top_item_scores"] = [[0.5] * 2_000 for _ in range(len(users))]  # 16 KB a row
    start, end = times[-1] - pd.Timedelta(days=1), times[-1] + pd.Timedelta(seconds=1)
    with redis_server(tmp_path / "redis") as (url, _):
        settings, fs = _applied(url, tmp_path / "registry.db", users, items)
        client = redis.Redis.from_url(url)
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 4 * 2**20)
        refused = r"'user_stats'.* row \d+ \(user_key='user-\d+'\).*maxmemory.*no materialisation interval"
        with pytest.raises(LoadError, match=refused):
            load_view(fs, "user_stats", _many_users(settings, start, end, 2_000), start.to_pydatetime(),
                      end.to_pydatetime())
        assert 0 < client.dbsize() < 2_000
        assert not feast_store.feature_store(settings).get_feature_view("user_stats").materialization_intervals


def test_a_row_that_cannot_be_encoded_stops_the_load_before_it_with_the_row_named(home, redis_url, tmp_path):
    from shoprank.features.redis_loader import LoadError, load_view

    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 2)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    start, end = times[-1] - pd.Timedelta(days=1), times[-1] + pd.Timedelta(seconds=1)
    settings, fs = _applied(f"{redis_url}/6", tmp_path / "registry.db", users, items)
    table = _many_users(settings, start, end, 9)
    keys = table.column("user_key").to_pylist()
    keys[6] = None
    table = table.set_column(table.schema.get_field_index("user_key"), "user_key", pa.array(keys, pa.string()))
    with pytest.raises(LoadError, match=r"'user_stats'.* row 6 .*no entity key"):
        load_view(fs, "user_stats", table, start.to_pydatetime(), end.to_pydatetime(), batch_rows=2)
    assert len(_dump(f"{redis_url}/6")) <= 6  # the batches before it, at most
    assert not feast_store.feature_store(settings).get_feature_view("user_stats").materialization_intervals


def test_a_redis_cluster_or_a_type_the_loader_does_not_encode_is_left_to_feasts_materialize():
    from types import SimpleNamespace

    from feast.field import Field
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig, RedisType
    from feast.types import Array, Bool, Float64, Int64, String

    from shoprank.features.redis_loader import supports

    def store(feature_type=Array(Float64), key=String, **options):  # noqa: B008 (feast types are values)
        view = SimpleNamespace(entity_columns=[Field(name="k", dtype=key)],
                               features=[Field(name="x", dtype=feature_type)])
        config = SimpleNamespace(online_store=RedisOnlineStoreConfig(**options), entity_key_serialization_version=3)
        return SimpleNamespace(config=config, get_feature_view=lambda name: view)

    assert supports(store(connection_string="localhost:6379"), "v")
    assert supports(store(connection_string="localhost:26379", redis_type=RedisType.redis_sentinel), "v")
    assert not supports(store(connection_string="localhost:7000", redis_type=RedisType.redis_cluster), "v")
    assert not supports(store(Bool, connection_string="localhost:6379"), "v")
    assert not supports(store(key=Int64, connection_string="localhost:6379"), "v")


@pytest.mark.parametrize(("values", "dtype"), [
    ([1.5, None, -0.0, 1e300], "Float64"), ([0, 1, -1, 2**40, None], "Int64"), (["a", "", "é", None], "String"),
    ([[1.0, 2.5], [], None], "Array(Float64)"), ([[0, 300, -5], [], None], "Array(Int64)"),
    ([[1, 2], [], None, [127]], "Array(Int64)"), ([["x", "yé"], [], None, [""]], "Array(String)"),
    ([["a" * 200], ["b"]], "Array(String)"),
    ([float("nan"), 0.0, None], "Float64"), ([-(2**63), 2**63 - 1, 127, 128, 16_383, 16_384], "Int64"),
    (["日本語", "x" * 200, "y" * 20_000, "é" * 70], "String"),
    ([[-(2**63), 2**63 - 1, 0], [2**40] * 3, [127, 128]], "Array(Int64)"),
    ([["y" * 20_000, "日本"], ["é" * 70], [], [""] * 130], "Array(String)"),
    ([[0.1] * 20_000, [float("inf"), -0.0]], "Array(Float64)"),
])
def test_each_column_encodes_as_feasts_own_conversion(values, dtype):
    from feast.type_map import python_values_to_proto_values
    from feast.types import Array, Float64, Int64, String

    types = {"Float64": Float64, "Int64": Int64, "String": String}
    feast_type = Array(types[dtype[6:-1]]) if dtype.startswith("Array") else types[dtype]
    expected = [v.SerializeToString() for v in python_values_to_proto_values(values, feast_type.to_value_type())]
    assert encode_column(pa.array(values), feast_type) == expected
    assert encode_column(pa.array(values).slice(1), feast_type) == expected[1:]  # a batch inside a table


@pytest.mark.parametrize("dtype", ["Array(String)", "String"])
def test_every_arrow_layout_of_a_column_encodes_the_same(dtype):
    """The parquet reader may hand over large lists and strings, dictionary-encoded strings or
    several chunks: the bytes are the same."""
    from feast.types import Array, String

    feast_type = Array(String) if dtype.startswith("Array") else String
    values = [["a", "bé"], None, [], ["c" * 300]] if dtype.startswith("Array") else ["a", None, "bé", "c" * 300]
    expected = encode_column(pa.array(values), feast_type)
    large = pa.large_list(pa.large_string()) if dtype.startswith("Array") else pa.large_string()
    assert encode_column(pa.array(values, large), feast_type) == expected
    assert encode_column(pa.chunked_array([pa.array(values[:2]), pa.array(values[2:])]), feast_type) == expected
    if dtype == "String":
        assert encode_column(pa.array(values).dictionary_encode(), feast_type) == expected


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
