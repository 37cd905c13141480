"""Calendar context: how much of the period a prediction is for falls in a seasonal shopping event.

Why: a ranker learns from label windows in the past and is served for the next one. When the
training windows hold a shopping event the serving window does not (on Ta Feng: the run-up to Lunar
New Year, 2001-01-24, sits inside the last training windows but not in February, the test period),
the model learns the event's behaviour (festive, first-time purchases; the week before the
holiday has 87k purchase lines and the lowest repurchase share of the winter) as if it were the
norm. With the share of the window that falls in a listed event as an input, the model can learn
the event's effect apart, and is served the value of the window it actually predicts.

The feature is known in advance (a calendar, not behaviour), so it is the same offline (window =
[cut-off, cut-off + horizon)) and online (window = [now, now + horizon)). Events come from
`calendar.toml` beside this module: each event names its anchor dates (e.g. every Lunar New Year
day) and how many days before / after the anchor it covers.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CALENDAR_FILE = Path(__file__).with_name("calendar.toml")


@dataclass(frozen=True)
class EventPeriod:
    name: str
    start: pd.Timestamp  # inclusive, UTC midnight
    end: pd.Timestamp  # exclusive


def load_calendar(path: Path = CALENDAR_FILE) -> list[EventPeriod]:
    """The event periods of a calendar file, sorted by start; a malformed entry names itself."""
    data = tomllib.loads(Path(path).read_text())
    periods: list[EventPeriod] = []
    for index, event in enumerate(data.get("event", [])):
        where = f"{path}: event #{index + 1} ({event.get('name', 'unnamed')})"
        missing = [k for k in ("name", "anchors", "days_before", "days_after") if k not in event]
        if missing:
            raise ValueError(f"{where}: missing {missing}; expected name, anchors (dates), days_before, days_after")
        if event["days_before"] < 0 or event["days_after"] < 0 or event["days_before"] + event["days_after"] == 0:
            raise ValueError(f"{where}: days_before/days_after must be >= 0 and cover at least one day")
        for anchor in event["anchors"]:
            try:
                day = pd.Timestamp(anchor, tz="UTC").normalize()
            except ValueError as err:
                raise ValueError(f"{where}: anchor {anchor!r} is not a date (expected YYYY-MM-DD)") from err
            periods.append(EventPeriod(event["name"], day - pd.Timedelta(days=event["days_before"]),
                                       day + pd.Timedelta(days=event["days_after"])))
    return sorted(periods, key=lambda p: p.start)


def event_share(starts: Sequence[pd.Timestamp] | pd.Series, horizon_days: float,
                periods: Sequence[EventPeriod]) -> np.ndarray:
    """For each window [start, start + horizon): the fraction of it inside any event period (0..1).

    Overlapping periods count once (they are merged first).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    begin = pd.to_datetime(pd.Series(starts), utc=True).to_numpy(dtype="datetime64[ns]")
    finish = begin + np.timedelta64(int(horizon_days * 86400), "s")
    covered = np.zeros(len(begin), dtype="float64")
    for start, end in _merged(periods):
        lo = np.maximum(begin, np.datetime64(start.tz_convert(None)))
        hi = np.minimum(finish, np.datetime64(end.tz_convert(None)))
        covered += np.clip((hi - lo) / np.timedelta64(1, "s"), 0.0, None)
    return np.clip(covered / (horizon_days * 86400.0), 0.0, 1.0)


def _merged(periods: Sequence[EventPeriod]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    spans: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for period in sorted(periods, key=lambda p: p.start):
        if spans and period.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], period.end))
        else:
            spans.append((period.start, period.end))
    return spans


def add_context_features(frame: pd.DataFrame, horizon_days: float, at: pd.Timestamp | None = None,
                         periods: Sequence[EventPeriod] | None = None) -> pd.DataFrame:
    """Add `ctx_event_share` for windows starting at each row's `event_timestamp` (offline) or `at` (online)."""
    periods = load_calendar() if periods is None else periods
    if at is not None:
        starts = pd.Series([pd.Timestamp(at)] * len(frame), index=frame.index)
    elif "event_timestamp" in frame:
        starts = frame["event_timestamp"]
    else:
        raise ValueError("context features need the window start: an `event_timestamp` column or `at`")
    return frame.assign(ctx_event_share=event_share(starts, horizon_days, periods))
