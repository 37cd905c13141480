"""The serving bench's load generator: open loop measures from each request's due time, so a
server stall shows in every request due during it (no coordinated omission); a closed loop hides
it. Errors are counted, not dropped."""

import asyncio
import itertools
import threading
import time

import pytest

from bench import loadgen


class StallingServer:
    """HTTP/1.1 keep-alive server on loopback: 200 at once, except that it answers nothing during
    [stall_at, stall_at + stall_s) after start, and 500 for paths that contain 'fail'."""

    def __init__(self, stall_at: float, stall_s: float) -> None:
        self.stall_at, self.stall_s = stall_at, stall_s
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.started = time.perf_counter()
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer) -> None:
        while line := await reader.readline():
            path = line.split(b" ")[1]
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            elapsed = time.perf_counter() - self.started
            if self.stall_at <= elapsed < self.stall_at + self.stall_s:
                await asyncio.sleep(self.stall_at + self.stall_s - elapsed)
            status = b"500 Internal Server Error" if b"fail" in path else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    def reset(self) -> None:
        self.started = time.perf_counter()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def stalling():
    server = StallingServer(stall_at=1.0, stall_s=1.0)
    yield server
    server.close()


def test_open_loop_counts_a_stall_in_every_request_due_during_it(stalling):
    stalling.reset()
    run = loadgen.run(loadgen.open_loop("127.0.0.1", stalling.port, itertools.repeat("/x"), 100, 3.0))
    summary = run.summary()
    assert summary["requests"] == 300 and summary["errors"] == 0
    # a third of the requests were due during the 1 s stall: their latencies spread from ~1 s to 0
    assert run.latency.get_value_at_percentile(90) / 1000 > 300
    assert summary["max_ms"] > 900
    assert summary["achieved_rps"] > 90  # the schedule kept going through the stall


def test_closed_loop_hides_the_same_stall(stalling):
    stalling.reset()
    run = loadgen.run(loadgen.closed_loop("127.0.0.1", stalling.port, itertools.repeat("/x"), 1, 3.0))
    # one connection waits out the stall once: a single slow sample among thousands
    assert run.latency.get_value_at_percentile(90) / 1000 < 50 and run.summary()["max_ms"] > 500


def test_errors_are_counted_by_kind(stalling):
    stalling.stall_s = 0.0
    paths = itertools.cycle(["/ok", "/fail"])
    run = loadgen.run(loadgen.open_loop("127.0.0.1", stalling.port, paths, 50, 1.0))
    assert run.summary()["errors"] == 25 and run.error_kinds == {"http_500": 25}
    refused = loadgen.run(loadgen.open_loop("127.0.0.1", 1, itertools.repeat("/x"), 20, 0.5))
    assert refused.errors == 10 and refused.ok == 0


class EchoServer(StallingServer):
    """Answers each request with what it received: method, path, the x-test header and the body."""

    def __init__(self) -> None:
        super().__init__(stall_at=1e9, stall_s=0.0)

    async def _client(self, reader, writer) -> None:
        while line := await reader.readline():
            method, path = line.split(b" ")[:2]
            headers = {}
            while (header := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            echo = b"|".join([method, path, headers.get("x-test", "-").encode(), body])
            status = b"200 OK" if headers.get("x-test") != "refuse" else b"401 Unauthorized"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(echo)).encode() + b"\r\n\r\n"
                         + echo)
            await writer.drain()
        writer.close()


def test_calls_carry_their_own_headers_and_bodies_and_answers_are_checked():
    server = EchoServer()
    try:
        calls = itertools.cycle([loadgen.Call("/a?k=1", {"X-Test": "one"}), "/plain",
                                 loadgen.Call("/events", {"X-Test": "two"}, body=[{"n": 1}]),
                                 loadgen.Call("/b", {"X-Test": "refuse"})])
        run = loadgen.run(loadgen.open_loop("127.0.0.1", server.port, calls, 40, 1.0, keep_samples=True,
                                            check=lambda r: None if b"|two|" not in r.body else "checked"))
        bodies = {body for *_, status, _, body in run.samples}
        assert {b"GET|/a?k=1|one|", b"GET|/plain|-|", b'POST|/events|two|[{"n":1}]'} <= bodies
        assert run.ok == 20 and run.error_kinds == {"checked": 10, "http_401": 10}
    finally:
        time.sleep(0.1)  # the server's readers see the client's connections close
        server.close()
