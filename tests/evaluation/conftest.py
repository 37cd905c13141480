"""Shared builders for the evaluation tests: tiny canonical event frames written by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprank.data.schema import EVENTS


def make_events(rows: list[tuple[str, str, str]], event_type: str = "purchase") -> pd.DataFrame:
    """Canonical events from (day 'YYYY-MM-DD', user, item); one basket per user-day, as Ta Feng."""
    frame = pd.DataFrame(rows, columns=["day", "user_id", "item_id"])
    frame["event_time"] = pd.to_datetime(frame["day"]).dt.tz_localize("UTC")
    frame["event_type"] = event_type
    frame["price"] = 1.0
    frame["quantity"] = 1
    frame["session_id"] = frame["user_id"] + "@" + frame["day"]
    frame["query"] = None
    return frame[EVENTS.names]


@pytest.fixture
def events_factory():
    return make_events
