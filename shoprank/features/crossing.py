"""The crossing: what the private stage hands the public pipeline, and nothing else.

Why a format of its own: the zone split is a promise about data, not only about prefixes. The
private tasks (ingest, the gate, publishing, pseudonymisation) end by writing one crossing per batch
under `features/crossing/<batch>/`; the public KFP pipeline and the hourly materialisation start
from its manifest. So the one place where data leaves the private zone is this module, and it
refuses a table whose columns are not the declared public ones (a raw `user_id`, `session_id`,
`age_group` or `region` column never gets written here, whatever a caller passes).

The manifest is written last and names each table with its rows and sha256: a reader either sees a
whole crossing or gets `CrossingError` naming what is missing or torn (S3 has no rename).
It also carries what the private stage decided once for the batch (the data interval, the snapshot
times, the key id), so no public step re-derives them.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.data.fetch import sha256_of
from shoprank.data.schema import ITEMS
from shoprank.features.pseudonymise import PUBLIC_EVENT_COLUMNS, PUBLIC_IMPRESSION_COLUMNS, PUBLIC_QUERY_COLUMNS
from shoprank.layout import CROSSING_PREFIX, crossing_prefix
from shoprank.storage import ObjectStore, put_dir

MANIFEST = "manifest.json"
#: Each table a crossing holds and the only columns it may have.
PUBLIC_COLUMNS: dict[str, list[str]] = {
    "interactions": PUBLIC_EVENT_COLUMNS,
    "impressions": PUBLIC_IMPRESSION_COLUMNS,
    "queries": PUBLIC_QUERY_COLUMNS,
    "catalogue": list(ITEMS.names),
}


class CrossingError(RuntimeError):
    """A crossing that is missing, incomplete, torn, or that would carry a non-public column."""


@dataclass(frozen=True)
class Crossing:
    """One batch's crossing as its manifest describes it."""

    manifest_key: str
    batch: str
    interval: tuple[str, str]
    source: str
    snapshot_times: tuple[str, ...]
    key_id: str
    tables: dict[str, dict]

    @property
    def times(self) -> list[pd.Timestamp]:
        return [pd.Timestamp(t) for t in self.snapshot_times]

    def as_dict(self) -> dict:
        return {"manifest_key": self.manifest_key, "batch": self.batch, "interval": list(self.interval),
                "source": self.source, "snapshot_times": list(self.snapshot_times), "key_id": self.key_id,
                "tables": self.tables}


def check_public(name: str, frame: pd.DataFrame) -> None:
    """Raise CrossingError unless `frame` has exactly the public columns of table `name`."""
    if name not in PUBLIC_COLUMNS:
        raise CrossingError(f"crossing: unknown table {name!r}; a crossing holds {sorted(PUBLIC_COLUMNS)}")
    wanted, got = PUBLIC_COLUMNS[name], list(frame.columns)
    if sorted(got) != sorted(wanted):
        extra, missing = sorted(set(got) - set(wanted)), sorted(set(wanted) - set(got))
        raise CrossingError(f"crossing: table {name!r} must have exactly the public columns {wanted}; "
                            f"refusing it with extra {extra} and missing {missing}")


Table = pd.DataFrame | Iterable[pd.DataFrame]


def write_crossing(store: ObjectStore, batch: str, tables: dict[str, Table], *, interval: tuple[str, str],
                   source: str, snapshot_times: list[pd.Timestamp], key_id: str) -> Crossing:
    """Write every table, then the manifest. A table is a frame or parts of one (a day's events,
    a chunk of sessions: what is written is held one part at a time). Each part is checked before
    it is written, and the tables go to the store only once every part of every one has passed, so
    nothing is written if one is not public."""
    missing = sorted(set(PUBLIC_COLUMNS) - set(tables))
    if missing:
        raise CrossingError(f"crossing {batch!r}: tables {missing} are missing")
    for name, table in tables.items():
        if isinstance(table, pd.DataFrame):
            check_public(name, table)
    prefix = crossing_prefix(batch)
    described: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="crossing-") as scratch:
        for name, table in tables.items():
            path = Path(scratch) / f"{name}.parquet"
            rows = _write_parts(name, [table] if isinstance(table, pd.DataFrame) else table, path)
            described[name] = {"key": f"{prefix}/{name}.parquet", "rows": rows, "sha256": sha256_of(path)}
        crossing = Crossing(f"{prefix}/{MANIFEST}", batch, (interval[0], interval[1]), source,
                            tuple(str(t) for t in snapshot_times), key_id, described)
        put_dir(store, prefix, Path(scratch), MANIFEST, json.dumps(crossing.as_dict(), indent=2).encode())
    return crossing


def _write_parts(name: str, parts: Iterable[pd.DataFrame], path: Path) -> int:
    """One parquet file of the parts (each checked), in the first non-empty part's Arrow schema; its rows."""
    writer: pq.ParquetWriter | None = None
    rows = 0
    empty: pa.Table | None = None
    try:
        for part in parts:
            check_public(name, part)
            table = pa.Table.from_pandas(part[PUBLIC_COLUMNS[name]], preserve_index=False)
            if not table.num_rows:
                empty = table if empty is None else empty
                continue
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
        if writer is None:
            pq.write_table(empty if empty is not None else
                           pa.Table.from_pandas(pd.DataFrame(columns=PUBLIC_COLUMNS[name])), path)
    finally:
        if writer is not None:
            writer.close()
    return rows


def batch_name(flow: str, start: str, end: str, written_at: str) -> str:
    """A crossing's batch: unique per write (`written_at` first, so names sort by age). A fixed name
    would let a later step read the previous batch's complete manifest while this one is still
    replicating, and would give KFP's cache the same input every night."""
    tag = f"{start}_{end}".replace(":", "")
    return f"{flow}/{written_at}-{tag}"


def crossings(store: ObjectStore, flow: str) -> list[str]:
    """The manifest keys of a flow's complete crossings, oldest first."""
    prefix = f"{crossing_prefix(flow)}/"
    return sorted(k for k in store.list(prefix) if k.endswith(f"/{MANIFEST}") and k.count("/") == prefix.count("/") + 1)


def latest_crossing(store: ObjectStore, flow: str) -> str:
    """The newest complete crossing of a flow (a bench or an operator picking up the last night)."""
    found = crossings(store, flow)
    if not found:
        raise CrossingError(f"no complete crossing under {store.uri(crossing_prefix(flow))}")
    return found[-1]


def drop_old_crossings(store: ObjectStore, flow: str, keep: int = 3) -> int:
    """Delete all but the newest `keep` crossings of a flow (and any folder without a manifest that
    is older than the newest complete one: a write that died halfway). Returns the objects deleted."""
    prefix = f"{crossing_prefix(flow)}/"
    complete = crossings(store, flow)
    kept = {k.rsplit("/", 1)[0] for k in complete[-keep:]}
    newest = complete[-1].rsplit("/", 1)[0] if complete else ""
    folders = {prefix + k.removeprefix(prefix).split("/", 1)[0] for k in store.list(prefix)}
    return sum(store.delete_prefix(f"{folder}/") for folder in sorted(folders)
               if folder not in kept and folder < newest)


def read_crossing(store: ObjectStore, manifest_key: str) -> Crossing:
    """The crossing a manifest names; CrossingError if there is none there."""
    if not manifest_key.endswith(MANIFEST):
        manifest_key = f"{manifest_key.rstrip('/')}/{MANIFEST}"
    if not store.exists(manifest_key):
        raise CrossingError(f"no crossing manifest at {store.uri(manifest_key)}: the private stage "
                            f"(pseudonymise) has not handed this batch over")
    raw = json.loads(store.get_bytes(manifest_key))
    return Crossing(manifest_key, raw["batch"], tuple(raw["interval"]), raw["source"],  # type: ignore[arg-type]
                    tuple(raw["snapshot_times"]), raw["key_id"], raw["tables"])


def table_bytes(store: ObjectStore, crossing: Crossing, name: str) -> bytes:
    """One table of the crossing as its parquet bytes, checked against the manifest's sha256 (a table
    rewritten after the manifest, by a later batch or a torn write, is refused, not read)."""
    if name not in crossing.tables:
        raise CrossingError(f"crossing {crossing.manifest_key} has no table {name!r}")
    entry = crossing.tables[name]
    data = store.get_bytes(entry["key"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CrossingError(f"crossing table {store.uri(entry['key'])} does not match its manifest "
                            f"{crossing.manifest_key} (rewritten since, or torn): run the private stage again")
    return data


def read_table(store: ObjectStore, crossing: Crossing, name: str) -> pd.DataFrame:
    """One table of the crossing, checked (`table_bytes`), as a frame: for the small tables."""
    return pq.read_table(io.BytesIO(table_bytes(store, crossing, name))).to_pandas()


def forget_in_crossings(store: ObjectStore, pseudonyms: set[str]) -> int:
    """Drop every row of these shoppers from every crossing (each table rewritten, then its manifest
    with the new rows and sha256, so readers accept the rewritten tables); the rows dropped."""
    from shoprank.storage import drop_rows

    dropped = 0
    for manifest_key in [k for k in store.list(f"{CROSSING_PREFIX}/") if k.endswith(f"/{MANIFEST}")]:
        raw = json.loads(store.get_bytes(manifest_key))
        changed = False
        for entry in raw["tables"].values():
            n = drop_rows(store, entry["key"], "user_key", pseudonyms)
            if n:
                data = store.get_bytes(entry["key"])
                entry["rows"], entry["sha256"], changed = entry["rows"] - n, hashlib.sha256(data).hexdigest(), True
                dropped += n
        if changed:
            store.put_bytes(manifest_key, json.dumps(raw, indent=2).encode())
    return dropped
