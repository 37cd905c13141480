"""Calendar context: the share of a predicted window inside a seasonal event, offline and online alike."""

import pandas as pd
import pytest

from shoprank.features.calendar import EventPeriod, add_context_features, event_share, load_calendar

UTC = "UTC"


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz=UTC)


def test_packaged_calendar_holds_the_lunar_new_year_run_up():
    periods = load_calendar()
    run_up = [p for p in periods if p.end == _ts("2001-01-24")]
    assert len(run_up) == 1 and run_up[0].start == _ts("2001-01-10")
    assert all(a.start <= b.start for a, b in zip(periods, periods[1:], strict=False))


def test_share_counts_the_overlap_of_each_window():
    periods = [EventPeriod("fest", _ts("2001-01-10"), _ts("2001-01-24"))]
    starts = pd.Series([_ts("2000-12-01"), _ts("2000-12-27"), _ts("2001-01-04"), _ts("2001-02-01")])
    share = event_share(starts, 28, periods)
    assert share.tolist() == pytest.approx([0.0, 14 / 28, 14 / 28, 0.0])
    assert event_share([_ts("2001-01-12")], 7, periods).tolist() == [1.0]


def test_overlapping_events_count_once():
    periods = [EventPeriod("a", _ts("2001-01-01"), _ts("2001-01-10")),
               EventPeriod("b", _ts("2001-01-05"), _ts("2001-01-15"))]
    assert event_share([_ts("2001-01-01")], 28, periods).tolist() == pytest.approx([14 / 28])


def test_online_rows_use_the_request_time_offline_rows_their_cut_off():
    periods = [EventPeriod("fest", _ts("2001-01-10"), _ts("2001-01-24"))]
    offline = pd.DataFrame({"event_timestamp": [_ts("2001-01-10"), _ts("2001-02-01")]})
    assert add_context_features(offline, 7, periods=periods)["ctx_event_share"].tolist() == [1.0, 0.0]
    online = pd.DataFrame({"item_id": ["a", "b"]})
    out = add_context_features(online, 7, at=_ts("2001-01-20"), periods=periods)
    assert out["ctx_event_share"].tolist() == pytest.approx([4 / 7, 4 / 7])
    with pytest.raises(ValueError, match="event_timestamp"):
        add_context_features(online, 7, periods=periods)


def test_malformed_calendar_names_the_event(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text('[[event]]\nname = "sale"\ndays_before = 3\ndays_after = 0\nanchors = ["2024-13-01"]\n')
    with pytest.raises(ValueError, match=r"event #1 \(sale\).*2024-13-01"):
        load_calendar(path)
    path.write_text('[[event]]\nname = "sale"\nanchors = ["2024-01-01"]\n')
    with pytest.raises(ValueError, match="missing"):
        load_calendar(path)
