"""A durable append log for the events the front end sends back, and the lists the API served.

Why a log of our own in front of the parquet: an event is acknowledged only once it is on disk
(`fsync`), and one fsync per small parquet file would cost more than the event. Records go to
segment files; concurrent appenders share fsyncs (group commit), so the cost of durability is one
fsync per burst, not per request. Later, `shoprank.data.served.roll` turns closed segments into
hourly parquet.

Each process writes its own segment (`seg-<time>-<pid>.log`) and holds an exclusive `flock` on it
while it is open: a segment nobody holds is closed (rotated, or its process died) and may be rolled.

Record framing: `SR` | payload length (u32) | CRC-32 of the payload (u32) | payload (JSON). A
process killed in the middle of a write leaves a torn last record (short, or failing its CRC);
readers detect it, drop it and say so. A torn record was never acknowledged: the acknowledgement
comes after the fsync of a complete record.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SR"
HEADER = struct.Struct(">2sII")
SEGMENT_GLOB = "seg-*.log"
MAX_RECORD = 64 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    kind: str  # "events" (acknowledged, fsync'd) or "served" (a served list, written but not fsync'd)
    items: list[dict]


def encode(record: Record) -> bytes:
    payload = json.dumps({"kind": record.kind, "items": record.items}, ensure_ascii=False,
                         separators=(",", ":")).encode()
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class SegmentRead:
    path: Path
    records: list[Record]
    torn: str | None  # why the tail was dropped (None: the segment ends on a whole record)
    valid_bytes: int


def read_segment(path: Path) -> SegmentRead:
    """Every whole record of a segment; a torn or corrupt tail is dropped and described."""
    data = Path(path).read_bytes()
    records: list[Record] = []
    offset = 0
    torn = None
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            torn = f"{len(data) - offset} byte(s) of a record header at offset {offset}"
            break
        magic, length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if magic != MAGIC or length > MAX_RECORD:
            torn = f"no record header at offset {offset} (corrupt from there, {len(data) - offset} byte(s))"
            break
        payload = data[start:start + length]
        if len(payload) < length:
            torn = f"a record at offset {offset} is cut short ({len(payload)} of {length} payload bytes)"
            break
        if zlib.crc32(payload) != crc:
            torn = f"the record at offset {offset} fails its CRC ({length} payload bytes)"
            break
        body = json.loads(payload)
        records.append(Record(body["kind"], body["items"]))
        offset = start + length
    return SegmentRead(Path(path), records, torn, offset)


class _Segment:
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"seg-{time.time_ns():020d}-{os.getpid()}.log"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while open: rollers keep off
        _fsync_dir(directory)  # the new file's name is durable before anything is acknowledged in it
        self.opened = time.monotonic()
        self.written = 0
        self.synced = 0
        self.closed = False
        self.sync_lock = threading.Lock()

    def sync(self, upto: int) -> None:
        """Make every byte up to `upto` durable; one fsync covers every appender waiting for it."""
        with self.sync_lock:
            if self.synced >= upto:
                return
            end = self.written
            os.fsync(self.fd)
            self.synced = end

    def close(self) -> None:
        with self.sync_lock:
            if self.closed:
                return
            os.fsync(self.fd)
            self.synced = self.written
            os.close(self.fd)  # releases the flock: the segment can be rolled
            self.closed = True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventLog:
    """The appending side: thread-safe; `append` returns once the record is durable (when asked)."""

    def __init__(self, directory: str | Path, max_bytes: int = 32 * 1024 * 1024, max_age_s: float = 60.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._segment: _Segment | None = None

    def append(self, record: Record, durable: bool = True) -> None:
        data = encode(record)
        with self._lock:
            segment = self._current()
            view = memoryview(data)
            try:
                while view:  # a short write (signal) goes on where it stopped
                    view = view[os.write(segment.fd, view):]
            except OSError:  # disk full, I/O error: cut the half record off so the segment ends whole, and
                self._abandon(segment)  # the next append starts a fresh segment
                raise
            segment.written += len(data)
            end = segment.written
        if durable:
            segment.sync(end)

    def _current(self) -> _Segment:
        segment = self._segment
        if segment is not None and (segment.written >= self.max_bytes
                                    or time.monotonic() - segment.opened >= self.max_age_s):
            segment.close()
            segment = None
        if segment is None:
            segment = self._segment = _Segment(self.directory)
        return segment

    def _abandon(self, segment: _Segment) -> None:
        try:
            os.ftruncate(segment.fd, segment.written)
        except OSError:
            pass  # readers drop a torn tail anyway
        try:
            segment.close()
        except OSError:
            pass
        self._segment = None

    def rotate(self) -> None:
        """Close the open segment (if it holds anything) so it can be rolled; the next append opens a new one."""
        with self._lock:
            if self._segment is not None and self._segment.written:
                self._segment.close()
                self._segment = None

    def rotate_if_due(self) -> None:
        with self._lock:
            segment = self._segment
            if segment is not None and segment.written and time.monotonic() - segment.opened >= self.max_age_s:
                segment.close()
                self._segment = None

    def close(self) -> None:
        with self._lock:
            if self._segment is not None:
                self._segment.close()
                if not self._segment.written:
                    self._segment.path.unlink(missing_ok=True)
                self._segment = None


def segments(directory: str | Path) -> list[Path]:
    """Every segment in the folder, oldest first."""
    folder = Path(directory)
    return sorted(folder.glob(SEGMENT_GLOB)) if folder.is_dir() else []


class Claim:
    """An exclusive hold on a closed segment (nobody writes or rolls it while held)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise

    def release(self, delete: bool) -> None:
        if delete:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def segment_created_s(path: Path) -> float | None:
    """When a segment was opened (Unix seconds), from its name `seg-<time_ns>-<pid>.log`."""
    try:
        return int(Path(path).name.split("-")[1]) / 1e9
    except (IndexError, ValueError):
        return None


def closed_segments(directory: str | Path) -> Iterator[Claim]:
    """Claims on the segments no process is writing (rotated, or left by a process that died)."""
    for path in segments(directory):
        try:
            yield Claim(path)
        except (BlockingIOError, FileNotFoundError):
            continue  # open in a live process, or rolled by another one just now


def read_all(directory: str | Path, log: Callable[[str], None] = print) -> Iterator[SegmentRead]:
    """Every segment's whole records, open ones included (read-only), saying where a tail was torn."""
    for path in segments(directory):
        try:
            read = read_segment(path)
        except FileNotFoundError:
            continue
        if read.torn:
            log(f"event log: {path.name}: dropped a torn last record: {read.torn}")
        yield read
