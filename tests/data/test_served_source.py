"""The `served` source: what POST /events stored becomes a night's batch that the gate judges like any
shop export; impressions and clicks stay out of the canonical events."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from shoprank.data.curated import ITEMS_KEY, USERS_KEY
from shoprank.data.errors import InputError
from shoprank.data.event_log import EventLog, Record
from shoprank.data.feedback import validate_event
from shoprank.data.ingest import Interval, ingest_batch
from shoprank.data.schema import ITEMS, USERS, conform
from shoprank.data.served import roll
from shoprank.data.sources import open_source
from shoprank.data.sources.synthetic import SyntheticSource
from shoprank.settings import load_settings
from shoprank.storage import open_store, write_parquet


def as_posted(row: pd.Series, n: int) -> dict:
    event = {"event_id": f"e{n}", "event_type": row["event_type"], "user_id": row["user_id"],
             "event_time": row["event_time"].isoformat(), "session_id": row["session_id"]}
    if row["event_type"] == "search":
        event["query"] = row["query"]
    else:
        event["item_id"] = row["item_id"]
        event["price"] = float(row["price"])
    return event


def test_a_served_night_passes_the_gate_with_walk_in_shoppers_and_without_impressions(home, tmp_path):
    from shoprank.validation import run_gate

    settings = load_settings()
    store = open_store(settings.store)
    shop = SyntheticSource(n_events=3000, n_users=150, n_items=300, n_categories=10, days=2)
    write_parquet(store, ITEMS_KEY, conform(shop.items(), ITEMS))
    write_parquet(store, USERS_KEY, conform(shop.users(), USERS))
    frame = next(shop.events())
    posted = [as_posted(row, n) for n, (_, row) in enumerate(frame.iterrows())]
    posted += [{"event_id": "imp1", "event_type": "impression", "user_id": "u1", "request_id": "r1", "position": 1,
                "item_id": "i3", "event_time": posted[0]["event_time"]},
               {"event_id": "walk1", "event_type": "view", "user_id": "walk-in-1", "item_id": "i3", "price": 2.0,
                "event_time": posted[0]["event_time"]}]
    now = datetime.now(UTC)
    accepted = [validate_event(e, i, now) for i, e in enumerate(posted)]
    assert all(isinstance(e, dict) for e in accepted)
    log = EventLog(tmp_path / "log")
    log.append(Record("events", accepted))
    log.close()
    assert roll(tmp_path / "log", store).events == len(posted)

    interval = Interval.parse("2024-01-01", "2024-01-03")
    counts = ingest_batch("served", settings.store, interval, tmp_path / "batch", progress=False)
    assert counts["events"] == len(posted) - 1  # the impression is not a canonical event
    assert counts["users"] == 151  # the accepted users plus the walk-in shopper
    result = run_gate(tmp_path / "batch", interval_start=interval.start, interval_end=interval.end,
                      state_dir=tmp_path / "state", reports_dir=tmp_path / "reports")
    assert result.passed, result.summary


def test_a_store_without_served_events_says_so(home):
    with pytest.raises(InputError, match="no served events yet"):
        open_source("served", load_settings().store)
