"""Rate limits: counted per key and window, shared across processes through a real Redis."""

import pytest

from shoprank.identity.rate_limits import RateLimiter
from tests.conftest import redis_server


def test_a_key_over_its_limit_is_told_when_to_come_back():
    limiter = RateLimiter(3, window_s=60)
    assert [limiter.hit("k", now=120.0).allowed for _ in range(4)] == [True, True, True, False]
    assert limiter.hit("k", now=150.0).retry_after_s == 30
    assert limiter.hit("other", now=150.0).allowed  # one caller's burst is not another's
    assert limiter.hit("k", now=180.0).allowed  # a new window


def test_two_workers_share_one_limit_through_redis(tmp_path):
    with redis_server(tmp_path / "redis") as (url, _):
        workers = [RateLimiter(5, window_s=60, redis_url=url) for _ in range(2)]
        verdicts = [workers[n % 2].hit("caller:front", now=600.0).allowed for n in range(8)]
        assert verdicts == [True] * 5 + [False] * 3


def test_a_limit_must_allow_something():
    with pytest.raises(ValueError, match="at least 1 request"):
        RateLimiter(0)


def test_the_api_counts_through_redis_without_blocking_and_agrees_with_the_blocking_count(tmp_path):
    import asyncio

    with redis_server(tmp_path / "redis") as (url, _):
        limiter = RateLimiter(4, window_s=60, redis_url=url)

        async def burst() -> list[bool]:
            verdicts = await asyncio.gather(*(limiter.hit_async("shopper:s", now=900.0) for _ in range(5)))
            return [v.allowed for v in verdicts]

        assert sorted(asyncio.run(burst())) == [False, True, True, True, True]
        assert not limiter.hit("shopper:s", now=900.0).allowed  # one count, whichever way it is asked
