"""The online clock's offset: read from the environment, a clear error when it is not a number."""

from __future__ import annotations

import importlib
import time

import pytest

from shoprank import clock


def test_offset_shifts_now_and_a_bad_value_says_what_it_expected(monkeypatch):
    monkeypatch.setenv(clock.OFFSET_ENV, "-86400")
    try:
        shifted = importlib.reload(clock)
        assert abs(shifted.now_s() - (time.time() - 86400)) < 5
        assert shifted.now().timestamp() == pytest.approx(shifted.now_s(), abs=5)
        monkeypatch.setenv(clock.OFFSET_ENV, "yesterday")
        with pytest.raises(ValueError, match="SHOPRANK_CLOCK_OFFSET_S must be a number of seconds"):
            importlib.reload(clock)
    finally:
        monkeypatch.delenv(clock.OFFSET_ENV)
        importlib.reload(clock)
    assert abs(clock.now_s() - time.time()) < 5
