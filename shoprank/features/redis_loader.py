"""Load a feature view's rows into Feast's Redis online store, in Feast's own layout, fast.

Why not `FeatureStore.materialize`: it turns every value into a Python `ValueProto` through Feast's
generic type conversion, row by row, and spends most of its time there (a user row carries ~340
list entries, ~4 KB): 3.4k user rows/s on this machine. The online layout is simple and stable: a
hash per entity (key: the serialised entity key + the project), one field per feature (murmur3 of
`<view>:<feature>`, value: the serialised `ValueProto`) and `_ts:<view>` (a serialised `Timestamp`).
This module writes exactly those bytes; a test holds them equal to Feast's own `materialize` and
reads them back through `get_online_features`.

How, and why this way: per-row Python (a dict per row, a redis-py pipeline entry per row, each
value's bytes joined row by row) costs more CPU than Redis needs to store the row, and the loader
and Redis share two cores. So nothing here loops over rows or list entries in Python. A batch of
rows becomes one buffer of RESP `HSET` commands, built column-wise:

- each column gives a few per-row parts: small ones built with numpy for all rows at once (the
  RESP lengths, the `ValueProto` tag and varint lengths, a number's whole value) and at most one
  body, an Arrow binary array over bytes that are already in place (a double list's values as
  they lie in Arrow's buffer, a string list's entries framed once per batch, a string's UTF-8);
- Arrow's `binary_join_element_wise` then concatenates, row after row, the constants (command,
  field names) and those parts: one C++ pass that writes the whole batch's commands into one buffer.

The buffer goes to Redis over one redis-py `Connection` (auth, TLS and database as configured)
from a sender thread, so Redis, on the other core, stores a batch while the next one is encoded.
Every reply is read and checked: a refused write or a lost connection raises `LoadError` naming
the view and the row, and the registry's materialisation interval is only recorded after every
row is written. Rows are written without Feast's read of the previous timestamp: a
materialisation of a snapshot is newer than what it replaces. The registry then records the
interval, as `materialize` does, so the refresh (`materialize_incremental`) and the API see the
same materialisation history.

A Redis Cluster is not written here (its keys live on several nodes), nor a view with another
join key or feature type than those encoded here: `supports` says so, and the caller uses Feast's
`materialize` for them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_U8 = np.uint8
_BINARY = pa.large_binary()  # the parts' type: int64 offsets, whatever a batch's size
_NOTHING = pa.scalar(b"", _BINARY)

# ValueProto field tags (field number << 3 | wire type)
_INT64 = 0x20  # int64_val = 4, varint
_DOUBLE = 0x29  # double_val = 5, 64-bit
_STRING = 0x12  # string_val = 2, length-delimited
_STRING_LIST = 0x62  # string_list_val = 12
_INT64_LIST = 0x72  # int64_list_val = 14
_DOUBLE_LIST = 0x7A  # double_list_val = 15
_REPEATED = 0x0A  # the list messages' `val` = 1, length-delimited (packed for numbers)
_LIST_TAG = {"double": _DOUBLE_LIST, "int64": _INT64_LIST, "string": _STRING_LIST}
_ENTITY_STRING = 2  # feast ValueType.STRING, as serialize_entity_key writes it


# -- vectorised building blocks ---------------------------------------------------------------------


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's protobuf varint: (an (n, w) byte matrix, left-aligned; each row's width).
    Negative int64 are written as protobuf does: ten bytes of their two's complement."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    n = len(v)
    if not n:
        return np.zeros((0, 1), dtype=_U8), np.zeros(0, dtype=np.int64)
    top, low = int(v.max()), int(v.min())
    if low >= 0 and top < 0x80:  # the common case (lengths, counts): the byte is the value
        return v.astype(_U8)[:, None], np.ones(n, dtype=np.int64)
    u = v.view(np.uint64)
    w = 10 if low < 0 else (top.bit_length() + 6) // 7
    width = np.ones(n, dtype=np.int64)
    for k in range(1, w):
        width += u >= np.uint64(1 << (7 * k))
    out = np.empty((n, w), dtype=_U8)
    for k in range(w):
        byte = (u >> np.uint64(7 * k)).astype(_U8) & 0x7F
        if k + 1 < w:
            byte |= (width > k + 1).astype(_U8) << 7
        out[:, k] = byte
    return out, width


_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _decimal(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each non-negative value in ASCII decimal (RESP lengths): (an (n, w) matrix, widths)."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    n = len(v)
    top = int(v.max()) if n else 0
    if top < 10:
        return (v + 48).astype(_U8)[:, None], np.ones(n, dtype=np.int64)
    w = len(str(top))
    width = np.ones(n, dtype=np.int64)
    for k in range(1, w):
        width += v >= _POW10[k]
    out = np.empty((n, w), dtype=_U8)
    for k in range(w):
        out[:, k] = (v // _POW10[np.maximum(width - 1 - k, 0)] % 10 + 48).astype(_U8)
    return out, width


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values) + 1, dtype=np.int64)
    out[0] = 0
    np.cumsum(values, out=out[1:])
    return out


def _binary(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow binary array over numpy bytes, no copy: value i is data[offsets[i]:offsets[i + 1]]
    (null where not `valid`: the join then skips it)."""
    n = len(offsets) - 1
    validity = None
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(_BINARY, n, [validity, pa.py_buffer(np.ascontiguousarray(offsets, np.int64)),
                                              pa.py_buffer(np.ascontiguousarray(data, _U8))])


def _as_binary(column: pa.Array) -> pa.Array:
    """A string (or binary) column as large binary: the same UTF-8 bytes, per row; nulls stay null."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        column = column.cast(pa.string())
    return column.cast(_BINARY)


def _join(parts: list[pa.Array | pa.Scalar], n: int) -> pa.Array:
    """Row i of the result: the concatenation of every part's row i (a scalar: the same bytes in
    every row; a null: nothing). One C++ pass over the batch (`binary_join_element_wise`)."""
    arrays = [p for p in parts if isinstance(p, pa.Array)]
    if not arrays:  # the kernel needs one array to know the length
        parts = [*parts, pa.nulls(n, _BINARY)]
    return pc.binary_join_element_wise(*parts, _NOTHING, null_handling="skip")


_Small = tuple[np.ndarray, "np.ndarray | None"]  # (an (n, w) byte matrix, each row's width or None: all w)


def _gap(run: list[bytes | _Small], n: int) -> pa.Array:
    """Consecutive small parts (constants and per-row matrices) as one binary array: written side
    by side into a padded (n, W) matrix, then compacted by one boolean mask (only when some part's
    width varies by row). One array instead of one per part keeps the row join's arguments few."""
    total = sum(len(p) if isinstance(p, bytes) else p[0].shape[1] for p in run)
    padded = np.empty((n, total), dtype=_U8)
    variable: list[tuple[int, int, np.ndarray]] = []
    col = 0
    for piece in run:
        if isinstance(piece, bytes):
            w = len(piece)
            padded[:, col:col + w] = np.frombuffer(piece, dtype=_U8)
        else:
            data, width = piece
            w = data.shape[1]
            padded[:, col:col + w] = data
            if width is not None and n and int(width.min()) < w:
                variable.append((col, w, width))
        col += w
    if not variable:
        return _binary(padded.ravel(), np.arange(0, n * total + 1, total, dtype=np.int64))
    keep = np.ones((n, total), dtype=bool)
    row_width = np.full(n, total, dtype=np.int64)
    for col, w, width in variable:
        np.less(np.arange(w), width[:, None], out=keep[:, col:col + w])
        row_width -= w - width
    return _binary(padded[keep], _exclusive_cumsum(row_width))


@dataclass
class _Parts:
    """A row's bytes as parts, in order: constants, small per-row matrices and per-row binary
    arrays (bodies). `arrays` turns each run of small parts into one argument of the row join."""

    parts: list[bytes | _Small | pa.Array] = field(default_factory=list)

    def const(self, data: bytes) -> None:
        if data:
            self.parts.append(data)

    def small(self, data: np.ndarray, width: np.ndarray | None = None) -> None:
        self.parts.append((data, width))

    def body(self, part: pa.Array) -> None:
        self.parts.append(part)

    def extend(self, other: _Parts) -> None:
        self.parts.extend(other.parts)

    def arrays(self, n: int) -> list[pa.Array | pa.Scalar]:
        out: list[pa.Array | pa.Scalar] = []
        run: list[bytes | _Small] = []
        for part in [*self.parts, None]:
            if isinstance(part, bytes | tuple):
                run.append(part)
                continue
            if run:
                if all(isinstance(p, bytes) for p in run):
                    out.append(pa.scalar(b"".join(run), _BINARY))  # type: ignore[arg-type]
                else:
                    out.append(_gap(run, n))
                run = []
            if part is not None:
                out.append(part)
        return out


def _valid(column: pa.Array) -> np.ndarray:
    if not column.null_count:
        return np.ones(len(column), dtype=bool)
    return column.is_valid().to_numpy(zero_copy_only=False)


def _header(tag: int, length: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`tag, varint(length)` per valid row (nothing for a null): a matrix and its width per row."""
    varint, width = _varints(length)
    head = np.empty((len(length), 1 + varint.shape[1]), dtype=_U8)
    head[:, 0] = tag
    head[:, 1:] = varint
    return head, np.where(valid, 1 + width, 0)


@dataclass
class _Value:
    """A column's `ValueProto` per row: its parts and its serialised length per row (0 for a null:
    Feast writes b"")."""

    parts: _Parts
    length: np.ndarray


def _encode(column: pa.Array | pa.ChunkedArray, kind: str, is_list: bool) -> _Value:
    """A column's values as Feast's `materialize` serialises them: a null or NaN scalar is an empty
    value, as is a null list; a null inside a double list is NaN (Feast reads the list through
    numpy), inside a string list an empty string; inside an int list 0 (what Feast's push path
    writes: its `materialize` fails on such a list)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    out = _Parts()
    if not is_list:
        if kind == "double":
            values = np.ascontiguousarray(column.to_numpy(zero_copy_only=False), dtype="<f8")
            head = np.empty((n, 9), dtype=_U8)
            head[:, 0] = _DOUBLE
            head[:, 1:] = values.view(_U8).reshape(n, 8)
            width = np.where(np.isnan(values), 0, 9)
            out.small(head, width)
            return _Value(out, width)
        valid = _valid(column)
        if kind == "int64":
            values = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            head, width = _header(_INT64, values, valid)
            out.small(head, width)
            return _Value(out, width)
        text = _as_binary(column)
        length = pc.binary_length(text).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        head, width = _header(_STRING, length, valid)
        out.small(head, width)
        out.body(text)
        return _Value(out, width + length)

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise TypeError(f"expected a list column, not {column.type}")
    valid = _valid(column)
    offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    # the entries of these rows only (`values` is the whole child array, whatever the slice)
    values = column.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    if kind == "double":  # packed doubles: the values as they lie in memory
        if values.null_count or values.type != pa.float64():
            values = values.cast(pa.float64()).fill_null(float("nan"))
        data = np.ascontiguousarray(values.to_numpy(zero_copy_only=False), dtype="<f8").view(_U8)
        bounds = offsets * 8
    elif kind == "int64":
        data, entry_bounds = _framed_ints(values.fill_null(0))
        bounds = entry_bounds[offsets]
    else:
        data, entry_bounds = _framed_strings(values.fill_null("") if values.null_count else values)
        bounds = entry_bounds[offsets]
    body = np.diff(bounds) * valid
    # the list's tag and length; for numbers the list message's one packed `val` (0x0a and its
    # length; an empty list has none), for strings its repeated `val`s are the body already
    packed = kind != "string"
    inner = np.where(body > 0, 1 + _varints(body)[1] + body, 0) if packed else body
    head, width = _header(_LIST_TAG[kind], inner, valid)
    out.small(head, width)
    if packed:
        head, more = _header(_REPEATED, body, valid & (body > 0))
        out.small(head, more)
        width = width + more
    out.body(_binary(data, bounds, valid))
    return _Value(out, width + body)


def _framed_ints(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every list entry's varint, concatenated, and where each starts (plus the end)."""
    ints = values.to_numpy(zero_copy_only=False).astype(np.int64)
    varint, width = _varints(ints)
    if varint.shape[1] == 1:  # all under 128: a varint is the byte itself
        return np.ascontiguousarray(varint[:, 0]), np.arange(len(ints) + 1, dtype=np.int64)
    return varint[np.arange(varint.shape[1]) < width[:, None]], _exclusive_cumsum(width)


def _framed_strings(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every list entry as the list message's repeated `val` (0x0a, varint(length), UTF-8 bytes),
    concatenated, and where each entry starts (plus the end): a join of each entry's header and
    its bytes."""
    text = _as_binary(values)
    n = len(text)
    length = pc.binary_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
    if n and int(length.max()) < 0x80:  # every header two bytes: 0x0a and the length itself
        head = np.empty((n, 2), dtype=_U8)
        head[:, 0] = _REPEATED
        head[:, 1] = length
        heads = _binary(head.ravel(), np.arange(0, 2 * n + 1, 2, dtype=np.int64))
    else:
        heads = _gap([_header(_REPEATED, length, np.ones(n, dtype=bool))], n)
    framed = _join([heads, text], n)
    _, offsets, data = framed.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64, count=n + 1, offset=framed.offset * 8)
    return np.frombuffer(data, dtype=_U8) if data is not None else np.zeros(0, _U8), bounds


def _kind(dtype) -> tuple[bool, str]:
    """(is a list, element kind) of a Feast dtype this loader writes."""
    name = str(dtype)
    is_list = name.startswith("Array(")
    base = name.removeprefix("Array(").removesuffix(")")
    kinds = {"Float64": "double", "Int64": "int64", "String": "string"}
    if base not in kinds:
        raise TypeError(f"the fast loader writes Float64, Int64 and String (and their arrays), not {name}")
    return is_list, kinds[base]


def encode_column(column: pa.Array | pa.ChunkedArray, dtype) -> list[bytes]:
    """Each row's serialised `ValueProto` for a column of Feast type `dtype` (null: an empty value,
    as Feast writes it). The loader's own encoder, one value per row: what the tests compare."""
    is_list, kind = _kind(dtype)
    value = _encode(column, kind, is_list)
    return _join(value.parts.arrays(len(column)), len(column)).to_pylist()


# -- HSET commands ------------------------------------------------------------------------------------


class _RowError(ValueError):
    """A row that cannot be written (`row`: its index in the batch)."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row = row


def _resp_field(name: bytes) -> bytes:
    """A RESP bulk string's length and the string, with the CRLFs either side of it."""
    return b"$%d\r\n%s\r\n" % (len(name), name)


def _timestamps(column: pa.Array | pa.ChunkedArray) -> _Value:
    """Each row's serialised `google.protobuf.Timestamp`, as Feast writes it (through a Python
    datetime: microseconds; zero fields omitted)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise _RowError(int(np.flatnonzero(~_valid(column))[0]), "no event timestamp")
    column = column.cast(pa.timestamp("ns", tz=getattr(column.type, "tz", None)))
    micros = column.cast(pa.int64()).to_numpy(zero_copy_only=False) // 1000
    seconds, nanos = micros // 1_000_000, micros % 1_000_000 * 1000
    out = _Parts()
    total = np.zeros(len(micros), dtype=np.int64)
    for tag, part in ((0x08, seconds), (0x10, nanos)):
        head, width = _header(tag, part, part != 0)
        out.small(head, width)
        total += width
    return _Value(out, total)


@dataclass
class _Commands:
    """What one batch sends: the RESP bytes of its commands, its rows and commands per row."""

    data: memoryview
    rows: int
    per_row: int


class _ViewWriter:
    """The constant parts of a view's commands (field names, key prefix, project) and the encoder
    of a batch of its rows into RESP `HSET` (and `EXPIRE`, with a key TTL) commands."""

    def __init__(self, fs, view, ttl: int | None) -> None:
        from feast.infra.online_stores.helpers import _mmh3

        config = fs.config
        (self.join_key,) = [c.name for c in view.entity_columns]
        self.timestamp = view.batch_source.timestamp_field
        self.project = config.project.encode()
        if config.entity_key_serialization_version < 3:
            raise ValueError("the fast loader writes entity keys of serialisation version 3")
        name = self.join_key.encode()
        # serialize_entity_key, one string key: count, type, name length, name, value type, value
        # length, value; then the project
        self.key_prefix = (np.array([1, _ENTITY_STRING, len(name)], dtype="<u4").tobytes() + name
                           + np.array([_ENTITY_STRING], dtype="<u4").tobytes())
        self.features = [(f.name, _kind(f.dtype), _mmh3(f"{view.name}:{f.name}")) for f in view.features]
        self.ts_field = f"_ts:{view.name}".encode()
        self.ttl = ttl
        self.per_row = 2 if ttl else 1

    def _key(self, out: _Parts, key: pa.Array, length: np.ndarray, lead: bytes) -> None:
        """`lead` (the command, up to the key's `$`), the key's RESP length and the key itself."""
        out.const(lead)
        digits, width = _decimal(len(self.key_prefix) + 4 + length + len(self.project))
        out.small(digits, width)
        out.const(b"\r\n" + self.key_prefix)
        out.small(length.astype("<u4").view(_U8).reshape(-1, 4))
        out.body(key)
        out.const(self.project + b"\r\n")

    def encode(self, part: pa.Table) -> _Commands:
        n = part.num_rows
        keys = part.column(self.join_key)
        key = _as_binary(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)
        if key.null_count:
            raise _RowError(int(np.flatnonzero(~_valid(key))[0]), f"no entity key {self.join_key!r}")
        length = pc.binary_length(key).to_numpy(zero_copy_only=False).astype(np.int64)
        out = _Parts()
        self._key(out, key, length, b"*%d\r\n$4\r\nHSET\r\n$" % (2 + 2 * (1 + len(self.features))))
        out.const(_resp_field(self.ts_field) + b"$")
        self._value(out, _timestamps(part.column(self.timestamp)))
        for name, (is_list, kind), field_id in self.features:
            out.const(_resp_field(field_id) + b"$")
            self._value(out, _encode(part.column(name), kind, is_list))
        if self.ttl:
            self._key(out, key, length, b"*3\r\n$6\r\nEXPIRE\r\n$")
            out.const(_resp_field(str(int(self.ttl)).encode()))
        joined = _join(out.arrays(n), n)
        _, offsets, data = joined.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int64, count=n + 1, offset=joined.offset * 8)
        return _Commands(memoryview(data)[int(bounds[0]):int(bounds[-1])], n, self.per_row)

    @staticmethod
    def _value(out: _Parts, value: _Value) -> None:
        digits, width = _decimal(value.length)
        out.small(digits, width)
        out.const(b"\r\n")
        out.extend(value.parts)
        out.const(b"\r\n")


# -- writing ------------------------------------------------------------------------------------------


def supports(fs, view_name: str | None = None) -> bool:
    """Whether the fast loader can write this store (and this view): a Redis online store on one
    server (a Sentinel master included), not a Redis Cluster (its keys live on several nodes); a
    view with one string join key and features of the types it encodes. Anything else is left to
    Feast's `materialize`, which writes every type."""
    config = fs.config.online_store
    kind = getattr(config, "redis_type", "redis")
    if config.type != "redis" or getattr(kind, "value", kind) == "redis_cluster":
        return False
    if view_name is None:
        return True
    view = fs.get_feature_view(view_name)
    keys = view.entity_columns
    if len(keys) != 1 or str(keys[0].dtype) != "String" or fs.config.entity_key_serialization_version < 3:
        return False
    try:
        for feature in view.features:
            _kind(feature.dtype)
    except TypeError:
        return False
    return True


def _latest(table: pa.Table, join_key: str, timestamp: str) -> pa.Table:
    """One row per entity: its newest (what `materialize` loads from a window). A window of one
    snapshot has one row per entity already: then the table is returned as it is."""
    keys = table.column(join_key)
    if pc.count_distinct(keys, mode="all").as_py() == table.num_rows:
        return table
    order = pc.sort_indices(table, [(join_key, "ascending"), (timestamp, "descending")])
    table = table.take(order)
    keys = table.column(join_key).to_numpy(zero_copy_only=False)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return table.filter(pa.array(first))


def _batches(rows: int, batch_rows: int) -> list[tuple[int, int]]:
    """(first row, rows) of each batch: the first ones small, so that Redis, idle until the first
    batch arrives, starts early; then `batch_rows` (big enough that numpy's per-call cost is small,
    small enough that a batch stays in cache)."""
    out, first, size = [], 0, min(512, batch_rows)
    while first < rows:
        out.append((first, min(size, rows - first)))
        first += size
        size = min(2 * size, batch_rows)
    return out


class LoadError(RuntimeError):
    """A materialisation into Redis that stopped midway: the message names the view and the row;
    rows before it may be written, the registry's interval is not recorded."""


class _Sender:
    """A thread that sends each batch's commands over one redis-py connection and reads back and
    checks every reply, so that Redis stores one batch while the next is encoded. At most two
    batches wait: memory stays bounded whatever the snapshot's size."""

    def __init__(self, connection, describe: Callable[[int], str]) -> None:
        self.connection = connection
        self.describe = describe
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="redis-loader-sender", daemon=True)
        self.thread.start()

    def put(self, first_row: int, commands: _Commands) -> None:
        self._put((first_row, commands))

    def finish(self) -> None:
        """Wait for every reply; raise the first failure."""
        self._put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop after the batch in flight (the encoder failed): nothing else is sent."""
        while True:
            try:
                self.batches.get_nowait()
            except queue.Empty:
                break
        self.batches.put(None)
        self.thread.join()

    def _put(self, item: tuple[int, _Commands] | None) -> None:
        """Queue `item`; raise the sender's failure instead if it stopped (it then takes no more)."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.batches.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        import redis

        pending: list[tuple[int, _Commands]] = []
        try:
            while True:
                item = self.batches.get()
                if item is None:
                    break
                first_row, commands = item
                try:
                    self.connection.send_packed_command([commands.data], check_health=False)
                except (redis.ConnectionError, redis.TimeoutError) as err:
                    raise LoadError(f"{self.describe(first_row)}: the connection to Redis failed while sending "
                                    f"rows {first_row}..{first_row + commands.rows - 1}: {err}") from err
                pending.append(item)
                while len(pending) > 1:  # replies of all but the batch just sent: Redis keeps reading it
                    self._replies(*pending.pop(0))
            for batch in pending:
                self._replies(*batch)
        except BaseException as err:  # handed to the encoding thread, which raises it
            self.error = err
            self.connection.disconnect()

    def _replies(self, first_row: int, commands: _Commands) -> None:
        import redis

        for k in range(commands.rows * commands.per_row):
            row = first_row + k // commands.per_row
            try:
                self.connection.read_response(disable_decoding=True)
            except redis.ResponseError as err:
                raise LoadError(f"{self.describe(row)}: Redis refused the write: {err}") from err
            except (redis.ConnectionError, redis.TimeoutError) as err:
                raise LoadError(f"{self.describe(row)}: the connection to Redis failed before its reply: "
                                f"{err}") from err


def load_view(fs, view_name: str, table: pa.Table, start: datetime, end: datetime,
              progress: Callable[[int], None] | None = None, batch_rows: int = 4_096) -> int:
    """Write the view's rows of `table` (its offline source, already cut to [start, end)) into the
    Redis online store, then record the materialisation interval in the registry; rows written.

    A failure midway raises `LoadError` naming the view and the row (or the batch, for a lost
    connection) and leaves the registry as it was, so the next refresh loads the window again."""
    config = fs.config
    if not supports(fs, view_name):
        raise ValueError(f"the fast loader does not write {view_name!r} into this online store (a Redis on one "
                         f"server, one string join key, Float64, Int64, String and their arrays): use materialize")
    view = fs.get_feature_view(view_name)
    ttl = getattr(config.online_store, "key_ttl_seconds", None)
    writer = _ViewWriter(fs, view, ttl)
    table = _latest(table, writer.join_key, writer.timestamp)
    keys = table.column(writer.join_key)

    def describe(row: int) -> str:
        return f"materialising {view_name!r} into Redis, row {row} ({writer.join_key}={keys[row].as_py()!r})"

    client = fs._get_provider().online_store._get_client(config.online_store)
    pool = client.connection_pool
    connection = pool.get_connection()
    written = 0
    try:
        sender = _Sender(connection, describe)
        try:
            for first, size in _batches(table.num_rows, batch_rows):
                part = table.slice(first, size)
                try:
                    commands = writer.encode(part)
                except _RowError as err:
                    raise LoadError(f"{describe(first + err.row)}: cannot be written: {err}") from err
                except (TypeError, ValueError, pa.ArrowException) as err:
                    raise LoadError(f"{describe(first)}: rows {first}..{first + size - 1} cannot be encoded: "
                                    f"{err}") from err
                sender.put(first, commands)
                written += size
                if progress is not None:
                    progress(size)
            sender.finish()
        except BaseException as err:
            sender.abandon()
            if isinstance(err, LoadError):
                raise LoadError(f"{err} (rows before it may be in Redis; no materialisation interval is "
                                f"recorded, so the next materialisation loads the window again)") from err.__cause__
            raise
    finally:
        pool.release(connection)
    fs.registry.apply_materialization(view, config.project, start, end)
    return written
