"""Ingest: one data interval from a source, mapped to the canonical schema, staged as parquet.

The staged batch is a canonical folder (events/date=.../part-N.parquet, items/, users/). Nothing
in the curated store changes here: the batch is published only after the validation gate passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from shoprank.data.schema import EVENTS, ITEMS, USERS, conform
from shoprank.data.sources import open_source
from shoprank.storage import replacing_dir


@dataclass(frozen=True)
class Interval:
    """A half-open data interval [start, end) in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def parse(cls, start: str, end: str) -> Interval:
        lo, hi = pd.Timestamp(start), pd.Timestamp(end)
        lo = lo.tz_localize("UTC") if lo.tzinfo is None else lo.tz_convert("UTC")
        hi = hi.tz_localize("UTC") if hi.tzinfo is None else hi.tz_convert("UTC")
        if hi <= lo:
            raise ValueError(f"data interval end {hi} must be after its start {lo}")
        return cls(lo, hi)


def ingest_batch(
    source: str, source_path: str | None, interval: Interval, out_dir: Path, progress: bool = True,
    **source_options: object,
) -> dict[str, int]:
    """Stage the events of `interval` plus the current catalogue and users; return row counts.

    Writes into a sibling temp folder and renames it into place, so a failed ingest leaves no
    half-written batch behind.
    """
    adapter = open_source(source, source_path or None, **source_options)
    out_dir = Path(out_dir)
    n_events = 0
    with replacing_dir(out_dir) as tmp:
        (tmp / "items").mkdir(parents=True)
        (tmp / "users").mkdir(parents=True)
        for index, chunk in enumerate(tqdm(adapter.events(), desc=f"ingest {source}", unit="chunk",
                                           disable=not progress)):
            inside = chunk[(chunk["event_time"] >= interval.start) & (chunk["event_time"] < interval.end)]
            if inside.empty:
                continue
            days = inside["event_time"].dt.strftime("%Y-%m-%d")
            for day, part in inside.groupby(days, sort=True):
                folder = tmp / "events" / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(conform(part, EVENTS), folder / f"part-{index:05d}.parquet")
            n_events += len(inside)
        items, users = adapter.items(), adapter.users()
        pq.write_table(conform(items, ITEMS), tmp / "items" / "part-0.parquet")
        pq.write_table(conform(users, USERS), tmp / "users" / "part-0.parquet")
        (tmp / "events").mkdir(exist_ok=True)
    return {"events": n_events, "items": len(items), "users": len(users)}
