"""Rate limits per caller and per shopper, shared by every worker and pod through Redis.

Why Redis: the API runs several workers per pod and several pods; a limit counted in each process
would allow workers × pods times the rate. A fixed window per key (`INCR` + `EXPIRE` in one
pipeline) is one round trip, and its answer says how long until the window turns over, which is the
`Retry-After` a 429 gives. Without a Redis URL (one process on one machine) the same windows are
counted in memory.
"""

from __future__ import annotations

import threading
import time
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
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> Verdict:
        """Count one request for `key`; whether it is within the limit."""
        at = time.time() if now is None else now
        window = int(at // self.window_s)
        retry_after = max(1, int((window + 1) * self.window_s - at))
        if self._redis is not None:
            name = f"{self.prefix}:{key}:{window}"
            with self._redis.pipeline() as pipe:
                count, _ = pipe.incr(name).expire(name, self.window_s + 1).execute()
        else:
            with self._lock:
                seen_window, count = self._counts.get(key, (window, 0))
                count = count + 1 if seen_window == window else 1
                self._counts[key] = (window, count)
        return Verdict(True, 0) if count <= self.limit else Verdict(False, retry_after)
