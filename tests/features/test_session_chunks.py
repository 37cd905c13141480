"""The private stage reads the window's search sessions in chunks: whole sessions, bounded rows."""

import numpy as np
import pandas as pd
import pyarrow as pa

from shoprank.data.curated import EVENTS_PREFIX, iter_event_days, iter_session_chunks, read_events
from shoprank.data.schema import EVENTS
from shoprank.data.search_log import SEARCH_LOG_COLUMNS, session_queries
from shoprank.storage import open_store, write_parquet


def _store_with_sessions(tmp_path, n_sessions: int = 300):
    """Sessions of a search and what followed, some crossing midnight, stored a day per object."""
    rng = np.random.default_rng(7)
    rows = []
    for s in range(n_sessions):
        start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 24 * 4)),
                                                                   minutes=50)
        rows.append((start, f"u{s % 40}", None, "search", None, None, f"sess-{s:04x}", f"shoes {s % 7}"))
        for k in range(1, 4):  # 20 minutes apart: a session started at 23:50 ends the next day
            rows.append((start + pd.Timedelta(minutes=20 * k), f"u{s % 40}", f"i{rng.integers(0, 30)}",
                         ["view", "cart", "purchase"][k - 1], 1.0, 1, f"sess-{s:04x}", None))
    frame = pd.DataFrame(rows, columns=["event_time", "user_id", "item_id", "event_type", "price", "quantity",
                                        "session_id", "query"])
    store = open_store(str(tmp_path))
    for day, part in frame.groupby(frame["event_time"].dt.strftime("%Y-%m-%d")):
        table = pa.Table.from_pandas(part.reindex(columns=EVENTS.names), schema=EVENTS, preserve_index=False)
        write_parquet(store, f"{EVENTS_PREFIX}/date={day}/part-0.parquet", table)
    return store, frame


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_chunks_hold_whole_sessions_and_give_the_same_search_log(tmp_path):
    store, frame = _store_with_sessions(tmp_path)
    crossing_midnight = frame.groupby("session_id")["event_time"].agg(lambda t: t.dt.date.nunique()).gt(1).sum()
    assert crossing_midnight > 0  # the case a day-at-a-time reader would get wrong
    chunks = list(iter_session_chunks(store, None, None, SEARCH_LOG_COLUMNS, max_rows=200))
    assert len(chunks) > 1 and sum(map(len, chunks)) == len(frame)
    seen = [set(c["session_id"]) for c in chunks]
    assert all(a.isdisjoint(b) for i, a in enumerate(seen) for b in seen[i + 1:])  # no session split
    whole = session_queries(read_events(store))
    chunked = pd.concat([session_queries(c) for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(_sorted(chunked), _sorted(whole))


def test_the_window_bounds_both_readers_and_an_empty_store_gives_one_typed_empty_part(tmp_path):
    store, frame = _store_with_sessions(tmp_path)
    start, end = pd.Timestamp("2024-01-02 06:00", tz="UTC"), pd.Timestamp("2024-01-03 12:00", tz="UTC")
    inside = frame[(frame["event_time"] >= start) & (frame["event_time"] < end)]
    days = list(iter_event_days(store, start, end))
    assert len(days) == 2 and sum(map(len, days)) == len(inside)
    assert sum(map(len, iter_session_chunks(store, start, end, SEARCH_LOG_COLUMNS, max_rows=100))) == len(inside)
    empty = open_store(str(tmp_path / "none"))
    (only,) = list(iter_event_days(empty))
    assert only.empty and list(only.columns) == EVENTS.names
    (chunk,) = list(iter_session_chunks(empty, None, None, SEARCH_LOG_COLUMNS))
    assert chunk.empty and "session_id" in chunk
