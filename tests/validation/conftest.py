"""Shared fixtures for the validation gate: small synthetic canonical batches, broken on purpose.

A batch is built from one seeded synthetic shop (one week, ~6k events) and written the way ingest
writes it (events/date=YYYY-MM-DD/part-0.parquet, items/part-0.parquet, users/part-0.parquet), so
a test only states its breakage: a function that edits the events / items / users frames.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.data.schema import EVENTS, ITEMS, USERS
from shoprank.data.sources.synthetic import SyntheticSource

START = pd.Timestamp("2024-01-01", tz="UTC")
END = pd.Timestamp("2024-01-08", tz="UTC")
NOW = pd.Timestamp("2024-03-01", tz="UTC")
FIXTURES = Path(__file__).with_name("fixtures")


def nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema])


def shop(seed: int = 7, start: str = "2024-01-01", n_events: int = 6_000) -> tuple[pd.DataFrame, ...]:
    source = SyntheticSource(n_events=n_events, n_users=300, n_items=200, n_categories=12, days=7, start=start,
                             seed=seed, chunk_events=3_000)
    events = pd.concat(source.events(), ignore_index=True)
    return events, source.items(), source.users()


@pytest.fixture(scope="session")
def week() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(events, items, users) of a clean synthetic week, 2024-01-01 .. 2024-01-08."""
    return shop()


@pytest.fixture(scope="session")
def next_week() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The following week (different seed, same catalogue and users), 2024-01-08 .. 2024-01-15."""
    events, items, users = shop(seed=8, start="2024-01-08")
    return events, items, users


def write_batch(out: Path, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                events_schema: pa.Schema | None = None) -> Path:
    """Write a canonical batch folder the way ingest does (one file per day)."""
    days = events["event_time"].dt.strftime("%Y-%m-%d")
    (out / "events").mkdir(parents=True, exist_ok=True)
    for day, part in events.groupby(days, sort=True):
        folder = out / "events" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(part.reset_index(drop=True), schema=events_schema or nullable(EVENTS),
                                     preserve_index=False)
        pq.write_table(table, folder / "part-0.parquet")
    for name, frame, schema in (("items", items, ITEMS), ("users", users, USERS)):
        (out / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame.reset_index(drop=True), schema=nullable(schema),
                                            preserve_index=False), out / name / "part-0.parquet")
    return out


Edit = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]


@pytest.fixture
def make_batch(tmp_path: Path, week) -> Callable[..., Path]:
    """make_batch(edit=None, base=week, name="batch"): a canonical folder, optionally broken by `edit`."""
    def make(edit: Edit | None = None, base=None, name: str = "batch") -> Path:
        events, items, users = (frame.copy() for frame in (base or week))
        if edit is not None:
            events, items, users = edit(events, items, users)
        return write_batch(tmp_path / name, events, items, users)

    return make


class Gate:
    """Runs run_gate with the week's interval, a fixed `now`, and this test's state/reports folders."""

    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "state"
        self.reports_dir = tmp_path / "reports"

    def __call__(self, batch: Path, **overrides):
        from shoprank.validation import run_gate

        args = {"interval_start": START, "interval_end": END, "state_dir": self.state_dir,
                "reports_dir": self.reports_dir, "now": NOW}
        args.update(overrides)
        return run_gate(batch, **args)

    def accept(self, result) -> None:
        from shoprank.validation import accept_batch

        accept_batch(result, self.state_dir)


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    return Gate(tmp_path)


def finding(result, check: str):
    """The one finding of `check` (fails the test with the summary when there is none)."""
    found = [f for f in result.findings if f.check == check]
    assert len(found) == 1, f"expected one finding for {check}:\n{result.summary}"
    return found[0]


def severities(result) -> dict[str, str]:
    """check -> severity of every fail/warn finding (info notes left out)."""
    return {f.check: f.severity for f in result.findings if f.severity != "info"}
