"""The gate on the real data sets: Ta Feng passes; REES46 gets exactly the findings it deserves;
and month by month, Ta Feng's real tracking gap of December 2000 is caught."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REES46_CSV, TAFENG_ZIP
from tests.validation.conftest import finding, write_batch

pytestmark = pytest.mark.skipif(not TAFENG_ZIP.exists() or not REES46_CSV.exists(),
                                reason="the shared real data sets are not present")


def _checks(result) -> list[tuple[str, str]]:
    return sorted((f.severity, f.check) for f in result.findings)


def test_tafeng_whole_interval_passes(tmp_path: Path):
    from shoprank.validation import run_gate_source

    result = run_gate_source("tafeng", TAFENG_ZIP, interval_start=pd.Timestamp("2000-11-01"),
                             interval_end=pd.Timestamp("2001-03-01"), state_dir=tmp_path / "state",
                             reports_dir=tmp_path / "reports")
    assert result.passed, result.summary
    assert result.counts == {"events": 817_741, "items": 23_812, "users": 32_266}
    assert _checks(result) == [("info", "events.drift.*"), ("info", "events.volume"), ("info", "items.brand.not_null")]
    assert finding(result, "items.brand.not_null").observed == "no item has a brand: the source does not provide brands"
    assert result.summary.startswith("validation gate PASSED\n")


def test_rees46_sample_gets_exactly_its_findings(tmp_path: Path):
    from shoprank.validation import run_gate_source

    result = run_gate_source("rees46", REES46_CSV, state_dir=None, reports_dir=tmp_path / "reports")
    assert result.passed, result.summary
    assert result.counts == {"events": 17_434, "items": 6_493, "users": 4_504}
    assert _checks(result) == [
        ("info", "events.drift.*"),
        ("info", "events.duplicates"),
        ("info", "events.price.positive"),
        ("info", "events.volume"),
        ("info", "items.price.positive"),
        ("warn", "items.brand.not_null"),
        ("warn", "source.category_code_missing"),
        ("warn", "source.truncated_last_line"),
    ]
    assert finding(result, "source.truncated_last_line").observed == (
        f"{REES46_CSV} line 17436: the last line is cut off mid-row (8 of 9 fields and no line end); it was dropped")
    assert finding(result, "source.category_code_missing").observed == (
        f"{REES46_CSV}: category_code is empty for 2,901 of 6,493 items (44.7%); "
        "the category falls back to the numeric category_id")
    assert finding(result, "items.brand.not_null").observed == "1,315 of 6,493 rows (20%) have no brand"
    price = finding(result, "events.price.positive")
    assert price.observed == "19 of 17,434 rows (0.11%) have price <= 0; e.g. 0.0 (within tolerance)"
    assert price.samples[0].startswith(f"{REES46_CSV} line ") and "price=0.0" in price.samples[0]
    dups = finding(result, "events.duplicates")
    assert dups.observed == "5 of 17,434 events (0.029%) are repeats (within tolerance)"
    assert dups.samples[0].startswith(f"{REES46_CSV} line ") and " repeats " in dups.samples[0]
    assert result.summary.startswith("validation gate PASSED: 3 warnings\n")


@pytest.fixture(scope="module")
def tafeng_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    from shoprank.data.sources import open_source

    source = open_source("tafeng", TAFENG_ZIP)
    return source.items(), source.users()


def test_tafeng_month_by_month_catches_the_december_tracking_gap(tmp_path: Path, tafeng_events, tafeng_tables):
    """Ta Feng has almost no rows for 19-22 Dec 2000 (434-666 a day against ~6,850). Run nightly-
    style month by month, the gate accepts November and stops December on exactly those days."""
    from shoprank.validation import accept_batch, run_gate

    items, users = tafeng_tables
    state, reports = tmp_path / "state", tmp_path / "reports"
    months = {}
    for start, end in (("2000-11-01", "2000-12-01"), ("2000-12-01", "2001-01-01")):
        inside = tafeng_events[(tafeng_events["event_time"] >= pd.Timestamp(start, tz="UTC"))
                               & (tafeng_events["event_time"] < pd.Timestamp(end, tz="UTC"))]
        batch = write_batch(tmp_path / start, inside, items, users)
        months[start] = run_gate(batch, interval_start=pd.Timestamp(start), interval_end=pd.Timestamp(end),
                                 state_dir=state, reports_dir=reports)
        if months[start].passed:
            accept_batch(months[start], state)
    assert months["2000-11-01"].passed
    december = months["2000-12-01"]
    assert not december.passed
    assert [f.check for f in december.findings if f.severity != "info"] == ["events.volume"]
    volume = finding(december, "events.volume")
    assert volume.expected == ("each day between 0.1x and 10x (exclusive) the usual 6,850 events "
                               "(median of 28 accepted days before 2000-12-01)")
    assert volume.observed == "4 of 31 day(s) outside"
    assert volume.samples == ("2000-12-19: 434 events (0.063x the usual)", "2000-12-20: 666 events (0.097x the usual)",
                              "2000-12-21: 589 events (0.086x the usual)", "2000-12-22: 462 events (0.067x the usual)")
    assert "drift PSI vs last accepted batch: category_mix 0.017, price 0.007" in december.summary
