"""The Feast feature store configured from settings: apply, materialise, read offline and online.

The settings' URLs pick the backends (SQLite file or Redis online store; file or SQL registry;
local or S3 parquet); this module is the only place that maps them onto Feast's configuration.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
from feast import FeatureStore, RepoConfig

from shoprank.features.definitions import FEATURE_SERVICE, ITEM_STATS_KEY, USER_STATS_KEY, feature_objects
from shoprank.settings import Settings
from shoprank.storage import ObjectStore, open_store, write_parquet

PROJECT = "shoprank"


def repo_config(settings: Settings) -> RepoConfig:
    online = settings.resolve(settings.feast_online_store)
    if online.startswith("sqlite:///"):
        online_cfg: dict = {"type": "sqlite", "path": online.removeprefix("sqlite:///")}
    elif online.startswith(("redis://", "rediss://")):
        online_cfg = {"type": "redis", "connection_string": online.split("://", 1)[1]}
    else:
        raise ValueError(f"feast_online_store {online!r}: expected sqlite:///PATH or redis://HOST:PORT[,opts]")
    registry = settings.resolve(settings.feast_registry)
    if registry.startswith(("postgresql", "mysql", "sqlite:")):
        registry_cfg: dict = {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 60}
    else:
        registry_cfg = {"registry_type": "file", "path": registry, "cache_ttl_seconds": 0}
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=PROJECT, provider="local", registry=registry_cfg, online_store=online_cfg,
        offline_store={"type": "duckdb"}, entity_key_serialization_version=3,
        repo_path=settings.feast_dir,
    )


def feature_store(settings: Settings) -> FeatureStore:
    return FeatureStore(config=repo_config(settings))


def object_store(settings: Settings) -> ObjectStore:
    return open_store(settings.store, settings.s3_endpoint_url or None)


def write_offline_sources(settings: Settings, users: pd.DataFrame, items: pd.DataFrame) -> None:
    """Replace the offline sources (one atomic PUT each) that the feature views read."""
    store = object_store(settings)
    write_parquet(store, USER_STATS_KEY, pa.Table.from_pandas(users, preserve_index=False))
    write_parquet(store, ITEM_STATS_KEY, pa.Table.from_pandas(items, preserve_index=False))


def apply_and_materialise(settings: Settings, end: pd.Timestamp) -> FeatureStore:
    """`feast apply` the definitions, then load the newest snapshot into the online store."""
    fs = feature_store(settings)
    fs.apply(feature_objects(settings.store, settings.s3_endpoint_url or None))
    start = end - pd.Timedelta(days=1)
    fs.materialize(start_date=start.to_pydatetime(), end_date=(end + pd.Timedelta(seconds=1)).to_pydatetime())
    return fs


def historical_features(settings: Settings, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of (user_key, item_id, event_timestamp) rows through the feature service."""
    fs = feature_store(settings)
    service = fs.get_feature_service(FEATURE_SERVICE)
    return fs.get_historical_features(entity_df=entity_df, features=service).to_df()


def online_features(settings: Settings, user_key: str, item_ids: list[str]) -> pd.DataFrame:
    """The same features for one user and many candidate items, from the online store."""
    fs = feature_store(settings)
    service = fs.get_feature_service(FEATURE_SERVICE)
    rows = [{"user_key": user_key, "item_id": item} for item in item_ids]
    return pd.DataFrame(fs.get_online_features(features=service, entity_rows=rows).to_dict())


def read_offline_table(settings: Settings, key: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(object_store(settings).get_bytes(key))).to_pandas()


__all__ = ["Path", "feature_store", "apply_and_materialise", "historical_features", "online_features"]
