"""Rate limits per caller and per shopper, shared by every worker and pod through Redis.

Why Redis: the API runs several workers per pod and several pods; a limit counted in each process
would allow workers × pods times the rate. A fixed window per key (`INCR` + `EXPIRE` in one
pipeline, no MULTI) is one round trip, and its answer says how long until the window turns over,
which is the `Retry-After` a 429 gives. The API asks through `hit_async` (redis.asyncio): a worker
serves other requests while it waits, instead of blocking its event loop for every request's round
trip. Without a Redis URL (one process on one machine) the same windows are counted in memory.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int  # 0 when allowed


class RateLimiter:
    """`limit` requests per `window_s` seconds per key."""

    def __init__(self, limit: int, window_s: int = 60, redis_url: str = "", prefix: str = "shoprank:rate") -> None:
        if limit < 1 or window_s < 1:
            raise ValueError(f"a rate limit is at least 1 request per at least 1 second, got {limit}/{window_s} s")
        self.limit, self.window_s, self.prefix = limit, window_s, prefix
        self._redis = None
        self.redis_url = redis_url
        self._async: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # an asyncio client per event loop
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _window(self, now: float | None) -> tuple[int, int]:
        at = time.time() if now is None else now
        window = int(at // self.window_s)
        return window, max(1, int((window + 1) * self.window_s - at))

    def _verdict(self, count: int, retry_after: int) -> Verdict:
        return Verdict(True, 0) if count <= self.limit else Verdict(False, retry_after)

    def _count_here(self, key: str, window: int) -> int:
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._counts[key] = (window, count)
        return count

    def hit(self, key: str, now: float | None = None) -> Verdict:
        """Count one request for `key`; whether it is within the limit."""
        window, retry_after = self._window(now)
        if self._redis is None:
            return self._verdict(self._count_here(key, window), retry_after)
        name = f"{self.prefix}:{key}:{window}"
        with self._redis.pipeline(transaction=False) as pipe:
            count, _ = pipe.incr(name).expire(name, self.window_s + 1).execute()
        return self._verdict(count, retry_after)

    async def hit_async(self, key: str, now: float | None = None) -> Verdict:
        """`hit` without blocking the event loop on the round trip to Redis."""
        window, retry_after = self._window(now)
        if self._redis is None:
            return self._verdict(self._count_here(key, window), retry_after)
        import asyncio

        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = redis.asyncio.Redis.from_url(
                self.redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
        name = f"{self.prefix}:{key}:{window}"
        async with client.pipeline(transaction=False) as pipe:
            count, _ = await pipe.incr(name).expire(name, self.window_s + 1).execute()
        return self._verdict(count, retry_after)
