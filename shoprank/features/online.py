"""Fast reads of the Feast online store for the online path.

Per request the API needs one user's row and the rows of a few hundred candidate items. Feast's
`get_online_features` builds response protos and frames around every call, which cost more than
the lookup itself, so this module reads through the same online store with Feast's provider API
(`online_read`, what `get_online_features` calls underneath): one read for the user's row per
request, and every item's row held in memory as arrays (`ItemTable`), reloaded as a whole, in the
background, when the registry says the store was materialised again. Requests see either the old
table or the new one, never a mix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat

import numpy as np
from feast import FeatureStore, FeatureView
from feast.infra.provider import get_provider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Array, String

from shoprank.features.definitions import FEATURE_SERVICE


def python_value(value: Value) -> object:
    """A Feast ValueProto as a plain Python value (lists for list types, None for null)."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    got = getattr(value, kind)
    return list(got.val) if kind.endswith("_list_val") else got


@dataclass(frozen=True)
class OnlineVersion:
    """Which materialisation of the online store a table was read from (the Feast registry's record)."""

    materialised_at: datetime | None  # wall time of the last `materialize` (registry last_updated_timestamp)
    data_end: datetime | None  # end of the last materialised interval: the newest feature time

    def age_seconds(self, now: float | None = None) -> float | None:
        if self.materialised_at is None:
            return None
        stamp = self.materialised_at if self.materialised_at.tzinfo else self.materialised_at.replace(tzinfo=UTC)
        return (now if now is not None else time.time()) - stamp.timestamp()


@dataclass(frozen=True)
class ItemTable:
    """Every item's online features; the extra last row stands for an unknown item (NaN / None).

    Numeric features are one float64 matrix (one gather per request, not one per feature), text
    features object columns."""

    version: OnlineVersion
    index: dict[str, int]
    numeric_names: tuple[str, ...]
    numeric: np.ndarray  # (items + 1, features)
    strings: dict[str, np.ndarray]
    loaded_at: float = field(default_factory=time.time)

    def __len__(self) -> int:
        return len(self.index)

    def take(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The candidates' rows: `item_id` plus each feature, NaN/None for items the store lacks."""
        rows = np.fromiter(map(self.index.get, item_ids, repeat(len(self.index))), dtype=np.int64,
                           count=len(item_ids))
        taken = self.numeric[rows].T
        out = {"item_id": np.asarray(item_ids, dtype=object)}
        out.update(zip(self.numeric_names, taken, strict=True))
        out.update((name, column[rows]) for name, column in self.strings.items())
        return out


def row_values(values: dict[str, Value] | None, fields: Sequence[str]) -> dict[str, object] | None:
    """One online row as plain values by field name (None for a missing field); None: no row."""
    if not values:
        return None
    return {name: python_value(values[name]) if name in values else None for name in fields}


def entity_key(join_key: str, value: str) -> EntityKey:
    return EntityKey(join_keys=[join_key], entity_values=[Value(string_val=value)])


class OnlineFeatures:
    """The feature service's two views, read through Feast's online store provider."""

    def __init__(self, fs: FeatureStore, service: str = FEATURE_SERVICE) -> None:
        self.fs = fs
        self.provider = get_provider(fs.config)
        views: dict[str, tuple[FeatureView, list[str]]] = {}
        for projection in fs.get_feature_service(service).feature_view_projections:
            view = fs.get_feature_view(projection.name)
            views[view.name] = (view, [f.name for f in projection.features])
        self.user_view, self.user_fields = views["user_stats"]
        self.item_view, self.item_fields = views["item_stats"]
        self.user_join_key = self.user_view.entity_columns[0].name
        self.item_join_key = self.item_view.entity_columns[0].name
        self._string_items = {f.name for f in self.item_view.features if f.dtype in (String, Array(String))}
        self._fail_fast()

    def _fail_fast(self) -> None:
        """A reader that must answer in milliseconds cannot wait out redis-py's default retries with
        back-off (seconds when Redis is down): one attempt, bounded by the socket timeouts."""
        from feast.infra.online_stores.redis import RedisOnlineStore

        store = getattr(self.provider, "online_store", None)
        if isinstance(store, RedisOnlineStore):
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            store._get_client(self.fs.config.online_store).set_retry(Retry(NoBackoff(), 0))

    def version(self) -> OnlineVersion:
        """The item view's last materialisation, re-read from the registry (not its cache)."""
        self.fs.refresh_registry()
        view = self.fs.get_feature_view(self.item_view.name)
        end = view.materialization_intervals[-1][1] if view.materialization_intervals else None
        return OnlineVersion(view.last_updated_timestamp, end)

    def user_row(self, user_key: str) -> dict[str, object] | None:
        """The user's features, or None when the online store has no row for this user.

        (`requested_features` is passed as a copy: Feast's Redis store appends to the list it gets.)"""
        ((_, values),) = self.provider.online_read(config=self.fs.config, table=self.user_view,
                                                   entity_keys=[entity_key(self.user_join_key, user_key)],
                                                   requested_features=list(self.user_fields))
        return row_values(values, self.user_fields)

    def read_items(self, item_ids: Sequence[str], chunk: int = 2000,
                   progress: Callable[[int], None] | None = None) -> ItemTable:
        """Every listed item's row as one table (items the store lacks are left out)."""
        version = self.version()
        ids = list(dict.fromkeys(item_ids))
        kept: list[str] = []
        values: dict[str, list] = {name: [] for name in self.item_fields}
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            rows = self.provider.online_read(config=self.fs.config, table=self.item_view,
                                             entity_keys=[entity_key(self.item_join_key, i) for i in part],
                                             requested_features=list(self.item_fields))
            for item_id, (_, row) in zip(part, rows, strict=True):
                if not row:
                    continue
                kept.append(item_id)
                for name in self.item_fields:
                    values[name].append(python_value(row[name]) if name in row else None)
            if progress is not None:
                progress(len(part))
        strings = {name: np.array([*values[name], None], dtype=object) for name in self.item_fields
                   if name in self._string_items}
        names = tuple(name for name in self.item_fields if name not in self._string_items)
        numeric = np.array([[*values[name], None] for name in names], dtype="float64").T.copy() if names \
            else np.zeros((len(kept) + 1, 0))
        return ItemTable(version, {item_id: i for i, item_id in enumerate(kept)}, names, numeric, strings)


class LiveItemTable:
    """The current ItemTable, replaced whole when the online store has been materialised again.

    `refresh()` compares the registry's record with the loaded table's and reloads only on a change;
    `start(interval)` runs it in a daemon thread. A failed reload keeps the old table and says why.
    """

    def __init__(self, online: OnlineFeatures, item_ids: Callable[[], Sequence[str]],
                 log: Callable[[str], None] = print) -> None:
        self.online = online
        self.item_ids = item_ids
        self.log = log
        self.table: ItemTable | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def refresh(self) -> bool:
        """Reload if the store was materialised since the table was read; True when a new table is live."""
        with self._lock:
            try:
                version = self.online.version()
                if self.table is not None and version == self.table.version:
                    return False
                table = self.online.read_items(self.item_ids())
            except Exception as err:  # keep serving the loaded table; say why the new one failed
                self.last_error = f"{type(err).__name__}: {err}"
                self.log(f"online features: reload failed, keeping the loaded table: {self.last_error}")
                return False
            self.table, self.last_error = table, None
            self.log(f"online features: {len(table):,} items loaded (materialised {version.materialised_at}, "
                     f"data up to {version.data_end})")
            return True

    def start(self, interval_s: float) -> LiveItemTable:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        threading.Thread(target=loop, name="item-table-refresh", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def forget_online(fs, pseudonyms: set[str]) -> dict[str, int]:
    """Delete these shoppers' rows from every user-keyed view of the online store (the batch user
    features and the live session); rows deleted per view. Feast writes rows but has no call that
    deletes one entity's, so this speaks to the two stores it supports here through Feast's own key
    encoding: SQLite (one row per feature) and Redis (one hash per entity, a field per feature)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_table_id

    config = fs.config
    views = [v for v in fs.list_feature_views() if [c.name for c in v.entity_columns] == ["user_key"]]
    version = config.entity_key_serialization_version
    deleted: dict[str, int] = {}
    if not pseudonyms or not views:
        return deleted
    provider = get_provider(config)
    store = provider.online_store
    kind = config.online_store.type
    if kind == "sqlite":
        conn = store._get_conn(config)
        with conn:
            for view in views:
                table = compute_table_id(config.project, view)
                keys = [serialize_entity_key(entity_key("user_key", p), entity_key_serialization_version=version)
                        for p in sorted(pseudonyms)]
                try:
                    cursor = conn.executemany(f'DELETE FROM "{table}" WHERE entity_key = ?', [(k,) for k in keys])
                except Exception as err:  # noqa: BLE001 - a view never materialised has no table
                    if "no such table" in str(err):
                        continue
                    raise
                deleted[view.name] = cursor.rowcount
    elif kind == "redis":
        client = store._get_client(config.online_store)
        for view in views:
            fields = [_mmh3(f"{view.name}:{f.name}") for f in view.features] + [f"_ts:{view.name}".encode()]
            count = 0
            for p in sorted(pseudonyms):
                key = _redis_key(config.project, entity_key("user_key", p), entity_key_serialization_version=version)
                count += 1 if client.hdel(key, *fields) else 0
                if not client.hlen(key):
                    client.delete(key)
            deleted[view.name] = count
    else:
        raise ValueError(f"erasure from a {kind!r} online store is not supported (sqlite and redis are)")
    return deleted
