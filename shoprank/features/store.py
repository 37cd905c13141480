"""The Feast feature store configured from settings: apply, materialise, read offline and online.

The settings' URLs pick the backends (SQLite file or Redis online store; file or SQL registry;
local or S3 parquet); this module is the only place that maps them onto Feast's configuration.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
from feast import FeatureStore, RepoConfig

from shoprank.features.definitions import (
    FEATURE_SERVICE,
    IMPRESSION_EVENTS_KEY,
    IMPRESSION_VIEW,
    ITEM_STATS_KEY,
    SESSION_EVENTS_KEY,
    SESSION_VIEW,
    USER_STATS_KEY,
    feature_objects,
)
from shoprank.features.engine.schema import conform
from shoprank.settings import Settings
from shoprank.storage import open_for, read_parquet, read_parquet_where, write_parquet, write_parquet_parts

PROJECT = "shoprank"
ONLINE_WRITE_BATCH = 10_000  # rows per online-store write while materialising


def repo_settings(settings: Settings, read_timeout_s: float | None = None) -> dict:
    """Feast's `feature_store.yaml` content for these settings (the one mapping, used by the pipeline,
    the API and `shoprank feature-repo`). `read_timeout_s` bounds each online-store call (Redis socket
    timeouts) for a reader that must answer fast; writers (materialisation) leave it unset."""
    online = settings.resolve(settings.feast_online_store)
    if online.startswith("sqlite:///"):
        online_cfg: dict = {"type": "sqlite", "path": online.removeprefix("sqlite:///")}
    elif online.startswith(("redis://", "rediss://")):
        connection = online.split("://", 1)[1]
        address, _, options = connection.partition(",")
        if "/" in address:  # redis://host:port/db, as a URL names the database: Feast's `db=` option
            address, db = address.split("/", 1)
            options = ",".join(o for o in (f"db={db}" if db else "", options) if o)
        connection = ",".join(p for p in (address, options) if p)
        if online.startswith("rediss://") and "ssl=" not in connection:
            connection += ",ssl=true"
        if read_timeout_s is not None:
            for option in ("socket_timeout", "socket_connect_timeout"):
                if f"{option}=" not in connection:
                    connection += f",{option}={read_timeout_s}"
        online_cfg = {"type": "redis", "connection_string": connection}
    else:
        raise ValueError(f"feast_online_store {online!r}: expected sqlite:///PATH or redis://HOST:PORT[,opts]")
    registry = settings.resolve(settings.feast_registry)
    if registry.startswith(("postgresql", "mysql", "sqlite:")):
        registry_cfg: dict = {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 60}
    else:
        registry_cfg = {"registry_type": "file", "path": registry, "cache_ttl_seconds": 0}
    # Materialisation writes the online store in batches: unset, Feast turns the whole snapshot into
    # protobuf rows at once, which for a big shop's list features is more memory than the snapshot.
    return {"project": PROJECT, "provider": "local", "registry": registry_cfg, "online_store": online_cfg,
            "offline_store": {"type": "duckdb"}, "entity_key_serialization_version": 3,
            "materialization": {"online_write_batch_size": ONLINE_WRITE_BATCH}}


def repo_config(settings: Settings, read_timeout_s: float | None = None) -> RepoConfig:
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(**repo_settings(settings, read_timeout_s), repo_path=settings.feast_dir)


def write_feature_store_yaml(settings: Settings, repo_dir: Path) -> Path:
    """`feature_store.yaml` for the Feast CLI and UI in `repo_dir`, from the active settings profile.

    Generated, never hand-kept: the pipeline and the API build the same configuration from the same
    settings. Written to a temporary file and renamed, so the CLI never reads half a file."""
    import os

    import yaml

    path = Path(repo_dir) / "feature_store.yaml"
    text = "# Written by `shoprank feature-repo` from the active settings profile; do not edit.\n"
    text += yaml.safe_dump(repo_settings(settings), sort_keys=False)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def feature_store(settings: Settings, read_timeout_s: float | None = None) -> FeatureStore:
    return FeatureStore(config=repo_config(settings, read_timeout_s))


def write_offline_sources(settings: Settings, users: pd.DataFrame | pa.Table | Iterable[pd.DataFrame | pa.Table],
                          items: pd.DataFrame | pa.Table | Iterable[pd.DataFrame | pa.Table],
                          users_file: Path | None = None, items_file: Path | None = None) -> int:
    """Replace the offline sources (one atomic PUT each) that the feature views read; returns the user rows.

    Either may come in parts (a snapshot, or a row group, at a time, as frames or Arrow tables): each
    is written as it arrives, so the step holds one part, never all of them (the user lists are most
    of a big shop's memory). `users_file`, `items_file`: where the files are built before they are
    put (the step's artifact); temporary files otherwise."""
    store = open_for(settings, "offline")
    with tempfile.TemporaryDirectory(prefix="offline-sources-") as scratch:
        rows = write_parquet_parts(store, USER_STATS_KEY, _feast_parts(users, "user_stats"),
                                   Path(users_file or Path(scratch) / "user_stats.parquet"))
        write_parquet_parts(store, ITEM_STATS_KEY, _feast_parts(items, "item_stats"),
                            Path(items_file or Path(scratch) / "item_stats.parquet"))
    return rows


def _feast_parts(parts: pd.DataFrame | pa.Table | Iterable[pd.DataFrame | pa.Table], table: str) -> Iterator[pa.Table]:
    """Each part in the view's Feast schema: a frame's all-empty list column would otherwise be
    list<null> in parquet, which Feast cannot read back as the list type it declares."""
    for number, part in enumerate([parts] if isinstance(parts, pd.DataFrame | pa.Table) else parts):
        arrow = part if isinstance(part, pa.Table) else pa.Table.from_pandas(part, preserve_index=False)
        yield conform(arrow, table, f"{table} part {number}")


SESSION_SOURCE_SCHEMA = pa.schema([
    ("user_key", pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ("session_viewed", pa.list_(pa.string())), ("session_viewed_at", pa.list_(pa.float64())),
    ("session_carted", pa.list_(pa.string())), ("session_carted_at", pa.list_(pa.float64())),
    ("session_last_query", pa.string()), ("session_last_query_at", pa.float64()),
])


IMPRESSION_SOURCE_SCHEMA = pa.schema([
    ("user_key", pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
    ("shown_items", pa.list_(pa.string())), ("shown_at", pa.list_(pa.float64())),
    ("clicked_items", pa.list_(pa.string())), ("clicked_at", pa.list_(pa.float64())),
])


def ensure_session_source(settings: Settings) -> None:
    """The push sources' batch sides (sessions, impressions), empty: those rows live in the online
    store only (pushed by the intake), but `feast materialize[-incremental]` reads every view's batch
    source, and a missing file would fail the whole command. Materialising an empty source writes
    nothing."""
    store = open_for(settings, "offline")
    for key, schema in ((SESSION_EVENTS_KEY, SESSION_SOURCE_SCHEMA), (IMPRESSION_EVENTS_KEY, IMPRESSION_SOURCE_SCHEMA)):
        if not store.exists(key):
            write_parquet(store, key, schema.empty_table())


def append_offline_snapshot(settings: Settings, users: pd.DataFrame | pa.Table, items: pd.DataFrame | pa.Table) -> None:
    """Add one snapshot's rows to the offline sources (the hourly refresh), replacing rows of the
    same snapshot time so a refresh run twice adds nothing. The nightly rewrites both sources whole.
    In Arrow throughout: the stored rows are filtered and rewritten, never turned into Python objects."""
    import pyarrow.compute as pc

    store = open_for(settings, "offline")
    for key, fresh, table in ((USER_STATS_KEY, users, "user_stats"), (ITEM_STATS_KEY, items, "item_stats")):
        parts = list(_feast_parts(fresh, table))
        if store.exists(key):
            stored = read_parquet(store, key)
            stamps = pc.unique(parts[0].column("event_timestamp"))
            stored = stored.filter(pc.invert(pc.is_in(stored.column("event_timestamp"), value_set=stamps)))
            parts.insert(0, conform(stored, table, store.uri(key)))
        write_parquet(store, key, pa.concat_tables(parts))


def _batch_views(fs: FeatureStore) -> list[str]:
    """The views loaded from the offline sources: not the session view, which the intake pushes
    (materialising it would replace live sessions with its empty batch side)."""
    return [view.name for view in fs.list_feature_views() if view.stream_source is None
            and view.name not in (SESSION_VIEW, IMPRESSION_VIEW)]


VIEW_SOURCES = {"user_stats": USER_STATS_KEY, "item_stats": ITEM_STATS_KEY}


def _window(settings: Settings, view: str, start: pd.Timestamp, end: pd.Timestamp) -> pa.Table:
    """The view's offline rows with start <= event_timestamp < end (the rows `materialize` reads);
    the bounds are typed like the stored column, so the row groups outside them are never read."""
    def within(schema: pa.Schema) -> list[tuple]:
        stamps_type = schema.field("event_timestamp").type
        return [("event_timestamp", ">=", pa.scalar(start.to_pydatetime(), stamps_type)),
                ("event_timestamp", "<", pa.scalar(end.to_pydatetime(), stamps_type))]

    return read_parquet_where(open_for(settings, "offline"), VIEW_SOURCES[view], within)


def _materialise(settings: Settings, fs: FeatureStore, views: list[str], start: dict[str, pd.Timestamp],
                 end: pd.Timestamp) -> None:
    """Load each view's window into the online store: into Redis through the fast loader (Feast's
    layout, written without Feast's per-value conversion), elsewhere (SQLite, a Redis Cluster, a view
    with a type the loader does not encode) through `materialize`."""
    from shoprank.features.redis_loader import load_view, supports

    for view in views:
        if supports(fs, view):
            load_view(fs, view, _window(settings, view, start[view], end), start[view].to_pydatetime(),
                      end.to_pydatetime())
        else:
            fs.materialize(start_date=start[view].to_pydatetime(), end_date=end.to_pydatetime(), feature_views=[view])


def materialise_incremental(settings: Settings, end: pd.Timestamp) -> FeatureStore:
    """Load what the offline sources gained since the last materialisation, up to `end`."""
    fs = feature_store(settings)
    views = _batch_views(fs)
    if not views:
        raise RuntimeError(f"the Feast registry at {settings.feast_registry} has no feature views: run the nightly "
                           f"pipeline once (it applies them) before refreshing the online store")
    ensure_session_source(settings)
    until = end + pd.Timedelta(seconds=1)
    starts = {}
    for name in views:
        last = fs.get_feature_view(name).most_recent_end_time
        if last is None:
            starts[name] = until - pd.Timedelta(days=1)
        else:
            last = pd.Timestamp(last)
            starts[name] = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
    _materialise(settings, fs, views, starts, until)
    return fs


def apply_and_materialise(settings: Settings, end: pd.Timestamp) -> FeatureStore:
    """`feast apply` the definitions, then load the newest snapshot into the online store (the batch
    views only)."""
    fs = feature_store(settings)
    ensure_session_source(settings)
    offline = settings.feast_offline
    fs.apply(feature_objects(offline, (settings.s3_endpoint_url or None) if offline.startswith("s3://") else None))
    views = _batch_views(fs)
    _materialise(settings, fs, views, dict.fromkeys(views, end - pd.Timedelta(days=1)), end + pd.Timedelta(seconds=1))
    return fs


def service_views(fs: FeatureStore) -> list[tuple[list[str], list[str]]]:
    """The feature service as (join keys, feature refs) per feature view.

    Joining view by view on each view's own distinct entity rows keeps a user's list features
    (hundreds of values) to one copy per user and time, not one per candidate item: the one-shot
    join through the service materialised them for every (user, item) row, 12 GB for 2.3M rows.
    """
    out = []
    for projection in fs.get_feature_service(FEATURE_SERVICE).feature_view_projections:
        view = fs.get_feature_view(projection.name)
        keys = [column.name for column in view.entity_columns]
        out.append((keys, [f"{projection.name_to_use()}:{f.name}" for f in projection.features]))
    return out


def historical_features(settings: Settings, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of (user_key, item_id, event_timestamp) rows through the feature service."""
    fs = feature_store(settings)
    joined = entity_df.copy()
    for keys, refs in service_views(fs):
        rows = entity_df[[*keys, "event_timestamp"]].drop_duplicates().reset_index(drop=True)
        values = fs.get_historical_features(entity_df=rows, features=refs).to_df()
        joined = joined.merge(values, on=[*keys, "event_timestamp"], how="left")
    return joined


def online_features(settings: Settings, user_key: str, item_ids: list[str], fs: FeatureStore | None = None,
                    views: list[tuple[list[str], list[str]]] | None = None) -> pd.DataFrame:
    """The same features for one user and many candidate items, from the online store.

    The user's row is read once, the items' rows once each (see `service_views`). A caller that
    serves many requests passes `views` once instead of re-reading the registry per request.
    """
    fs = fs or feature_store(settings)
    frame = pd.DataFrame({"user_key": user_key, "item_id": list(item_ids)})
    for keys, refs in views or service_views(fs):
        rows = frame[keys].drop_duplicates().to_dict("records")
        values = pd.DataFrame(fs.get_online_features(features=refs, entity_rows=rows).to_dict())
        frame = frame.merge(values, on=keys, how="left")
    return frame


def read_offline_table(settings: Settings, key: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(open_for(settings, "offline").get_bytes(key))).to_pandas()


__all__ = ["Path", "feature_store", "apply_and_materialise", "historical_features", "online_features",
           "write_feature_store_yaml"]
