"""Open-loop and closed-loop HTTP load for the serving bench.

Open loop: request i is due at t0 + i / rate, whatever happened to the ones before it, and its
latency is measured from that due time, not from when it was actually sent. A server (or a load
generator) that stalls therefore shows the stall in every request that was due meanwhile: no
coordinated omission (the wrk2 / HdrHistogram way). Requests go out on keep-alive HTTP/1.1
connections; when every open connection is busy a new one is opened, so a slow answer never holds
back the next request.

The client speaks just enough HTTP/1.1 (GET and POST, headers per request, Content-Length bodies)
over asyncio streams on uvloop: it shares the machine with the servers it measures, and a
general-purpose client (aiohttp, httpx) costs several times more CPU per request. A request is a path
(an anonymous GET) or a `Call` (a path with its own headers, such as a shopper's bearer token, and
optionally a JSON body to POST), encoded once when it is made, so per-request headers cost the
schedule nothing. Latencies go into an HDR histogram (microseconds, three significant digits).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

TIMEOUT_S = 2.0
MAX_CONNECTIONS = 512


def histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # 1 us .. 60 s


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Call:
    """One request, its bytes made once: `GET path` with `headers`, or a POST of `body` (JSON) when
    given. `head(host)` is the request as sent (the Host header added per pool)."""

    __slots__ = ("path", "_head", "_tail")

    def __init__(self, path: str, headers: Mapping[str, str] | None = None, body: object = None) -> None:
        self.path = path
        lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        if body is None:
            self._head, self._tail = f"GET {path} HTTP/1.1\r\n", (lines + "\r\n").encode()
        else:
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
            self._head = f"POST {path} HTTP/1.1\r\n"
            self._tail = (lines + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                          ).encode() + data

    def encode(self, host_line: bytes) -> bytes:
        return self._head.encode() + host_line + self._tail


Request = str | Call


class StaleConnection(Exception):
    """A kept-alive connection the server had closed before this request."""


class HttpPool:
    """Keep-alive connections to one host; a request takes an idle one or opens a new one."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.host_line = f"Host: {host}\r\n".encode()

    async def get(self, request: Request) -> Response:
        """Send `request` (a path: a plain GET) on a kept-alive connection; one the server closed while
        idle is retried on a fresh one (as HTTP clients do when nothing of the answer has come; the
        server closed it before reading), never on one that had started to answer."""
        data = (request.encode(self.host_line) if isinstance(request, Call)
                else f"GET {request} HTTP/1.1\r\n".encode() + self.host_line + b"\r\n")
        if self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, data)
            except StaleConnection:
                pass
        if self.opened >= MAX_CONNECTIONS:
            raise ConnectionError(f"more than {MAX_CONNECTIONS} connections busy")
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return await self._exchange(reader, writer, data, fresh=True)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                        fresh: bool = False) -> Response:
        try:
            writer.write(data)
            try:
                status_line = await reader.readline()
            except ConnectionResetError:
                status_line = b""
            if not status_line:
                if not fresh:
                    raise StaleConnection()
                raise ConnectionError("connection closed by the server")
            status = int(status_line.split(b" ", 2)[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
            self.opened -= 1
        else:
            self.idle.append((reader, writer))
        return Response(status, headers, body)

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class RunResult:
    offered_rps: float
    duration_s: float
    latency: HdrHistogram = field(default_factory=histogram)
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    first_due: float = 0.0
    last_done: float = 0.0
    samples: list[tuple[float, float, int, dict[str, str], bytes]] = field(default_factory=list)

    def record_error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def summary(self) -> dict[str, float | int | dict]:
        span = max(self.last_done - self.first_due, 1e-9)
        h = self.latency
        return {"offered_rps": self.offered_rps, "achieved_rps": round(self.ok / span, 1),
                "requests": self.ok + self.errors, "p50_ms": h.get_value_at_percentile(50) / 1000,
                "p95_ms": h.get_value_at_percentile(95) / 1000, "p99_ms": h.get_value_at_percentile(99) / 1000,
                "max_ms": h.get_max_value() / 1000, "errors": self.errors, "error_kinds": dict(self.error_kinds)}


#: Checks an answer beyond its status: None when it is what was asked for, else the error kind to count.
Check = Callable[[Response], str | None]


async def _one(pool: HttpPool, request: Request, due: float, result: RunResult, keep: bool,
               check: Check | None = None) -> None:
    try:
        response = await asyncio.wait_for(pool.get(request), TIMEOUT_S)
    except TimeoutError:
        result.record_error("timeout")
        done = time.perf_counter()
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as err:
        result.record_error(type(err).__name__)
        done = time.perf_counter()
    else:
        done = time.perf_counter()
        problem = f"http_{response.status}" if response.status != 200 else (
            check(response) if check is not None else None)
        if problem is None:
            result.ok += 1
        else:
            result.record_error(problem)
        if keep:
            result.samples.append((due, done, response.status, response.headers, response.body))
    result.latency.record_value(max(int((done - due) * 1e6), 1))
    result.last_done = max(result.last_done, done)


async def open_loop(host: str, port: int, paths: Iterator[Request], rate: float, duration_s: float,
                    keep_samples: bool = False, on_tick: Callable[[float], None] | None = None,
                    check: Check | None = None) -> RunResult:
    """Send `rate` requests per second for `duration_s` on a fixed schedule; time each from its due time.

    Times are `time.perf_counter()` (microseconds), not the event loop's clock (uvloop's has
    millisecond steps). `on_tick(elapsed_s)` is called between sends (the swap bench uses it);
    `check` judges each 200 (an error kind, or None for a good answer).
    """
    pool = HttpPool(host, port)
    result = RunResult(rate, duration_s)
    start = time.perf_counter() + 0.05
    result.first_due = start
    tasks = []
    for i in range(int(rate * duration_s)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if on_tick is not None:
            on_tick(time.perf_counter() - start)
        tasks.append(asyncio.create_task(_one(pool, next(paths), due, result, keep_samples, check)))
    await asyncio.gather(*tasks)
    await pool.close()
    return result


async def closed_loop(host: str, port: int, paths: Iterator[Request], connections: int,
                      duration_s: float, check: Check | None = None) -> RunResult:
    """`connections` clients, each sending its next request when the last one is answered."""
    result = RunResult(0.0, duration_s)
    end = time.perf_counter() + duration_s
    result.first_due = time.perf_counter()

    async def client() -> None:
        pool = HttpPool(host, port)
        while time.perf_counter() < end:
            await _one(pool, next(paths), time.perf_counter(), result, False, check)
        await pool.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return result


def run(coroutine):
    """Run on uvloop (cheaper per request than the default loop), as the servers do."""
    import uvloop

    return uvloop.run(coroutine)
