"""The online path's clock: wall time, shifted by `SHOPRANK_CLOCK_OFFSET_S` seconds.

Everything online that compares an event's time with "now" reads this clock: the intake's limit on
event times in the future, the session window when the intake pushes and when the recommender reads,
the time a served list is logged with, and the calendar context of the predicted window. A replay or
a simulation of a past period (`make bench-loop` runs the real API in the simulated days) sets the
offset so that all of them agree on what "now" is; production never sets it.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

OFFSET_ENV = "SHOPRANK_CLOCK_OFFSET_S"


def _offset() -> float:
    raw = os.environ.get(OFFSET_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"${OFFSET_ENV} must be a number of seconds (the shift of the online clock), "
                         f"got {raw!r}") from None


OFFSET_S = _offset()


def now_s() -> float:
    """Unix seconds, as the online path sees them."""
    return time.time() + OFFSET_S


def now() -> datetime:
    return datetime.fromtimestamp(now_s(), UTC)
