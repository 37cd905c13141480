"""The cluster-profile Feast backends, against real local servers: Redis as the online store and
Postgres as the SQL registry. Same definitions and code path as the local SQLite/file setup."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from shoprank.features import store as feast_store
from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.snapshots import snapshot_times
from shoprank.settings import load_settings
from tests.conftest import redis_server
from tests.features.test_snapshots import ITEMS, _interactions
from tests.services import postgres_missing

PG_URL = os.environ.get("SHOPRANK_TEST_POSTGRES", "postgresql+psycopg://shoprank:shoprank@127.0.0.1:5432/shoprank")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def postgres_url():
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except Exception as err:  # noqa: BLE001 - any failure means: no server to test against
        postgres_missing(PG_URL, err)
    yield PG_URL


def _materialise(settings):
    times = snapshot_times(pd.Timestamp("2024-02-08", tz="UTC"), 3)
    users, items = feature_snapshots(_interactions(), ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    feast_store.apply_and_materialise(settings, times[-1])


def test_redis_online_store(home, redis_url):
    settings = load_settings(feast_online_store=redis_url)
    assert feast_store.repo_config(settings).online_store.type == "redis"
    _materialise(settings)
    online = feast_store.online_features(settings, "u1", ["a", "z"]).set_index("item_id")
    assert "z" in online.loc["a", "user_top_items"] and online.loc["z", "item_pop_7d"] == 1
    import redis

    assert redis.Redis.from_url(redis_url).dbsize() > 0  # the values really live in Redis


def test_postgres_sql_registry(home, postgres_url):
    settings = load_settings(feast_registry=postgres_url)
    assert feast_store.repo_config(settings).registry.registry_type == "sql"
    _materialise(settings)
    names = sorted(fv.name for fv in feast_store.feature_store(settings).list_feature_views())
    assert names == ["item_stats", "user_impressions", "user_session", "user_stats"]
    online = feast_store.online_features(settings, "u2", ["b"])
    assert online.loc[0, "user_n_purchases"] == 2  # b on 01-31, a on 02-02


def test_unknown_online_store_url_is_a_clear_error(home):
    with pytest.raises(ValueError, match="expected sqlite:///PATH or redis://HOST:PORT"):
        feast_store.repo_config(load_settings(feast_online_store="cassandra://x"))


READER_URL = os.environ.get("SHOPRANK_TEST_POSTGRES_READER",
                            "postgresql+psycopg://shoprank_reader:shoprank_reader@127.0.0.1:5432/shoprank")


def test_the_online_apis_registry_role_reads_and_cannot_write(home, postgres_url):
    """Least privilege for real: the online API's role may SELECT the registry (the API works with it)
    and nothing else; the pipeline's role applies and materialises."""
    import sqlalchemy

    from shoprank.features.definitions import feature_objects
    from shoprank.features.online import OnlineFeatures

    writer = load_settings(feast_registry=postgres_url)
    _materialise(writer)
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as conn:  # what the infra's feast_reader role gets (database_roles.tf)
        conn.execute(sqlalchemy.text("GRANT USAGE ON SCHEMA public TO shoprank_reader"))
        conn.execute(sqlalchemy.text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO shoprank_reader"))
    reader = load_settings(feast_registry=READER_URL)
    try:
        online = OnlineFeatures(feast_store.feature_store(reader))
    except sqlalchemy.exc.OperationalError as err:
        pytest.skip(f"no shoprank_reader role on this Postgres (`make test`'s scratch Postgres has it): {err}")
    assert online.user_row("u2")["user_n_purchases"] == 2
    assert online.version().data_end is not None
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied"):
        feast_store.feature_store(reader).apply(feature_objects(reader.store))
