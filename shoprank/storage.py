"""An object store with one key layout over a local folder or S3.

Keys are slash-separated (`curated/events/date=2001-01-01/part-0.parquet`). The local store writes
through a temporary file and an atomic rename, so a crash never leaves a half-written object; S3
PUTs are atomic per object already. Code above this layer never sees which one it talks to.

Objects that several writers update (locks, the gate's reference, the model config) go through
`read_versioned` / `put_if`: a compare-and-swap on a version token, S3's conditional writes
(`If-None-Match: *` to create, `If-Match: <etag>` to replace) or, on a local folder, a `flock`ed
read-compare-rename. A writer that lost the race learns it (`None`) instead of overwriting.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from shoprank.settings import Settings


class ObjectStore(Protocol):
    root: str

    def uri(self, key: str) -> str: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def open_read(self, key: str) -> BinaryIO: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def read_versioned(self, key: str) -> tuple[bytes, str] | None: ...
    def put_if(self, key: str, data: bytes, expected: str | None) -> str | None: ...


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary file next to `target` that becomes `target` in one rename when the block ends,
    and is removed if it raises: readers never see part of a file, and nothing is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replacing_dir(target: Path) -> Iterator[Path]:
    """A temporary folder next to `target` that takes its place when the block ends, and is removed
    if it raises: readers see the old folder or the new one, never a half-written one.

    The swap is one `renameat2(RENAME_EXCHANGE)` where the kernel and file system have it (Linux),
    so `target` never disappears; elsewhere the old folder is renamed aside first (a reader that
    looks in that instant finds no folder, never a partial one)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the folder from other users once in place
        if not target.exists():
            os.rename(tmp, target)
        elif _exchange(tmp, target):
            shutil.rmtree(tmp)  # now the old folder
        else:
            old = tmp.with_name(tmp.name.removesuffix(".partial") + ".old")
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def put_dir(store: ObjectStore, prefix: str, folder: Path, manifest_name: str, manifest: bytes) -> list[str]:
    """Upload a local folder under `prefix`, its manifest last: the store's counterpart of
    `replacing_dir`. S3 has no rename, so readers take a prefix as complete only once its manifest is
    there (one atomic PUT); an upload that dies halfway leaves files without one, which readers skip
    and the next writer removes. Returns the keys written, manifest last."""
    folder = Path(folder)
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != manifest_name):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        store.put_file(key, path)
        keys.append(key)
    store.put_bytes(f"{prefix}/{manifest_name}", manifest)
    return [*keys, f"{prefix}/{manifest_name}"]


def get_dir(store: ObjectStore, prefix: str, folder: Path, manifest_name: str) -> bytes:
    """Download what `put_dir` uploaded under `prefix` into `folder`; returns the manifest. A
    prefix without its manifest (an upload that died halfway, or none) is FileNotFoundError."""
    manifest_key = f"{prefix}/{manifest_name}"
    if not store.exists(manifest_key):
        raise FileNotFoundError(f"nothing complete at {store.uri(prefix)}: no {manifest_name} there")
    manifest = store.get_bytes(manifest_key)
    folder = Path(folder)
    for key in store.list(f"{prefix}/"):
        if key == manifest_key:
            continue
        path = folder / key.removeprefix(prefix).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get_bytes(key))
    return manifest


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


class LocalStore:
    """A folder on local disk, the embedded default."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(str(root).removeprefix("file://")).resolve())

    def _path(self, key: str) -> Path:
        path = Path(self.root, key.lstrip("/")).resolve()
        if not str(path).startswith(self.root):
            raise ValueError(f"key {key!r} escapes the store root {self.root}")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        with replacing(self._path(key)) as tmp:
            tmp.write_bytes(data)

    def put_file(self, key: str, path: Path) -> None:
        """Copy a local file in: a large object never passes through memory."""
        with replacing(self._path(key)) as tmp:
            shutil.copyfile(path, tmp)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader: a parquet reader fetches the footer and the row groups it needs, no more."""
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [prefix]
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        base = self._path(prefix)
        if base.is_dir():
            shutil.rmtree(base)
        elif base.exists():
            base.unlink()
        return len(keys)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[Path]:
        import fcntl

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.flock"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        if not self._path(key).exists():  # reading never creates folders or guard files
            return None
        with self._key_lock(key) as path:
            if not path.exists():
                return None
            data = path.read_bytes()
            return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, expected: str | None) -> str | None:
        """Write only if the object is absent (`expected` None) or still has token `expected`."""
        with self._key_lock(key) as path:
            current = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
            if current != expected:
                return None
            self.put_bytes(key, data)
            return hashlib.sha256(data).hexdigest()


class S3Store:
    """An S3 bucket (or any S3-compatible endpoint) through boto3, same key layout as LocalStore."""

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        import boto3

        if not root.startswith("s3://"):
            raise ValueError(f"S3Store root must start with s3://, got {root!r}")
        self.root = root.rstrip("/")
        bucket_and_prefix = self.root.removeprefix("s3://")
        self.bucket, _, prefix = bucket_and_prefix.partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url or None)

    def _key(self, key: str) -> str:
        return self.prefix + key.lstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Streamed from disk (a multipart upload when large); the object appears only once complete."""
        self._s3.upload_file(str(path), self.bucket, self._key(key))

    def get_bytes(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader over ranged GETs: a parquet reader fetches the footer and the row groups
        it needs, not the whole object."""
        size = self._s3.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        return io.BufferedReader(_RangedObject(self._s3, self.bucket, self._key(key), size),  # type: ignore[return-value]
                                 buffer_size=1 << 20)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                yield obj["Key"].removeprefix(self.prefix)

    def list(self, prefix: str) -> list[str]:
        return sorted(self._iter_keys(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`, 1000 per request. A batch answers per key; a key it could
        not delete is deleted alone, and one that still fails raises naming it (a batch's errors come
        back in a 200 response, so ignoring them would leave data behind silently). Alone, because
        an IAM-enforcing test server (moto) authorises a batch against the bucket, not each key."""
        from botocore.exceptions import ClientError

        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            for error in answer.get("Errors", []):
                try:
                    self._s3.delete_object(Bucket=self.bucket, Key=error["Key"])
                except ClientError as err:
                    raise PermissionError(f"cannot delete s3://{self.bucket}/{error['Key']}: {err}") from err
        return len(keys)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            got = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return got["Body"].read(), got["ETag"]

    def put_if(self, key: str, data: bytes, expected: str | None) -> str | None:
        """S3 conditional write: create only if absent, or replace only the object with ETag `expected`."""
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            put = self._s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except ClientError as err:
            if err.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return None
            raise
        return put["ETag"]


class _RangedObject(io.RawIOBase):
    """One S3 object as a seekable raw file, each read one ranged GET."""

    def __init__(self, s3, bucket: str, key: str, size: int) -> None:
        self._s3, self._bucket, self._key, self._size, self._at = s3, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = max(base + offset, 0)
        return self._at

    def readinto(self, buffer) -> int:
        end = min(self._at + len(buffer), self._size)
        if end <= self._at:
            return 0
        body = self._s3.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._at}-{end - 1}")["Body"]
        data = body.read()
        buffer[:len(data)] = data
        self._at += len(data)
        return len(data)


def open_store(root: str, endpoint_url: str | None = None) -> ObjectStore:
    """The store for a root: `s3://bucket/prefix` means S3, anything else a local folder."""
    if root.startswith("s3://"):
        return S3Store(root, endpoint_url)
    return LocalStore(root)


Which = Literal["store", "models", "served", "offline"]


def open_for(settings: Settings, which: Which = "store", under: str = "",
             root: str | Path | None = None) -> ObjectStore:
    """The store the settings name: `store` (curated data, features, state), `models` (the model base
    path TF Serving reads), `served` (the rolled events) or `offline` (Feast's offline sources);
    `under` narrows it to a prefix (a key of `shoprank.layout`). `root` replaces the settings' root
    (a folder a user or a bench named) and keeps their S3 endpoint. The one place a root and the S3 endpoint meet."""
    roots = {"store": settings.store, "models": settings.models, "served": settings.served,
             "offline": settings.feast_offline}
    if which not in roots:
        raise ValueError(f"unknown store {which!r}: expected one of {sorted(roots)}")
    root = str(root) if root is not None else roots[which]
    if under:
        root = f"{root.rstrip('/')}/{under.strip('/')}"
    return open_store(root, settings.s3_endpoint_url or None)


def write_parquet(store: ObjectStore, key: str, table: pa.Table) -> None:
    """Serialise in memory, then one atomic put: readers never see a partial file."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    store.put_bytes(key, buf.getvalue())


def write_parquet_parts(store: ObjectStore, key: str, parts: Iterable[pa.Table], path: Path) -> int:
    """Write tables one after another into one parquet file at `path`, then put it under `key`.

    For a table too big to hold whole: each part becomes row groups as it arrives and can be freed.
    Every part is cast to the first non-empty part's schema (a later part that cannot be is an error,
    naming the part). The file appears at `path` only once complete, and the store is untouched if
    a part fails halfway. Returns the rows written."""
    path = Path(path)
    writer: pq.ParquetWriter | None = None
    rows, empty = 0, None
    with replacing(path) as tmp:
        try:
            for number, part in enumerate(parts):
                if part.num_rows == 0:
                    empty = part if empty is None else empty
                    continue
                if writer is None:
                    writer = pq.ParquetWriter(tmp, part.schema, compression="zstd")
                elif not part.schema.equals(writer.schema):
                    try:
                        part = part.select(writer.schema.names).cast(writer.schema)
                    except (KeyError, pa.ArrowException) as err:  # a missing column; a type with no cast
                        raise ValueError(f"{store.uri(key)}: part {number} has schema {part.schema}, "
                                         f"expected the first part's {writer.schema}: {err}") from err
                writer.write_table(part)
                rows += part.num_rows
            if writer is None:  # nothing but empty parts: an empty file with their schema
                if empty is None:
                    raise ValueError(f"{store.uri(key)}: no parts to write")
                pq.write_table(empty, tmp, compression="zstd")
        finally:
            if writer is not None:
                writer.close()  # before the rename: the footer is what makes the file whole
    store.put_file(key, path)
    return rows


def read_parquet(store: ObjectStore, prefix: str) -> pa.Table:
    """All parquet objects under a prefix, concatenated (schemas must agree)."""
    keys = [k for k in store.list(prefix) if k.endswith(".parquet")]
    if not keys:
        raise FileNotFoundError(f"no parquet objects under {store.uri(prefix)}")
    tables = [pq.read_table(io.BytesIO(store.get_bytes(k))) for k in keys]
    return pa.concat_tables(tables, promote_options="default")


def read_parquet_where(store: ObjectStore, key: str,
                       filters: list[tuple] | Callable[[pa.Schema], list[tuple]]) -> pa.Table:
    """The rows of the parquet object `key` that pass `filters` (pyarrow's DNF), reading only the
    row groups whose statistics can hold them: a source of many snapshots costs the snapshots read,
    not the object's size. `filters` may be built from the object's schema (literals typed like
    their column), read through the same open reader."""
    with store.open_read(key) as source:
        if callable(filters):
            filters = filters(pq.read_schema(source))
        return pq.read_table(source, filters=filters)


def drop_rows(store: ObjectStore, key: str, column: str, values: set[str]) -> int:
    """Rewrite the parquet object `key` without the rows whose `column` is in `values` (one atomic
    put; untouched when no row matches or the object has no such column); the rows dropped.
    What an erasure does to every table that names a shopper."""
    import pyarrow.compute as pc

    table = pq.read_table(io.BytesIO(store.get_bytes(key)))
    if column not in table.column_names or not values or table.num_rows == 0:
        return 0
    hit = pc.fill_null(pc.is_in(table.column(column).cast(pa.string()), value_set=pa.array(sorted(values),
                                                                                           pa.string())), False)
    dropped = pc.sum(hit).as_py() or 0
    if dropped:
        write_parquet(store, key, table.filter(pc.invert(hit)))
    return int(dropped)


def drop_rows_under(store: ObjectStore, prefix: str, column: str, values: set[str]) -> dict[str, int]:
    """`drop_rows` for every parquet object under `prefix`: rows dropped per object (those with any)."""
    dropped = {}
    for key in store.list(prefix):
        if key.endswith(".parquet"):
            n = drop_rows(store, key, column, values)
            if n:
                dropped[key] = n
    return dropped


def _without(value: object, values: set[str]) -> tuple[object, int]:
    """`value` (parsed JSON) without the keys and list entries that are in `values`; how many went."""
    if isinstance(value, dict):
        kept, gone = {}, 0
        for k, v in value.items():
            if k in values:
                gone += 1
                continue
            kept[k], n = _without(v, values)
            gone += n
        return kept, gone
    if isinstance(value, list):
        out, gone = [], 0
        for item in value:
            if isinstance(item, str) and item in values:
                gone += 1
                continue
            item, n = _without(item, values)
            out.append(item)
            gone += n
        return out, gone
    return value, 0


def drop_json_entries_under(store: ObjectStore, prefix: str, values: set[str]) -> dict[str, int]:
    """For every JSON object under `prefix`, drop the keys and list entries that are in `values`
    (an artifact such as a training set's truth, keyed by shopper); entries dropped per object."""
    import json

    dropped = {}
    for key in store.list(prefix):
        if not key.endswith(".json"):
            continue
        try:
            parsed = json.loads(store.get_bytes(key))
        except ValueError:
            continue  # not JSON after all: nothing of it is read as such
        kept, gone = _without(parsed, values)
        if gone:
            store.put_bytes(key, json.dumps(kept).encode())
            dropped[key] = gone
    return dropped
