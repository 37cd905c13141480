"""The suppression rule's memory: what each shopper was shown and clicked, kept per impression in the
online store (SQLite here, Redis on the cluster), counted over any window, forgotten on erasure."""

from __future__ import annotations

import pytest

from shoprank.features.impressions import MAX_SHOWN, ImpressionStore, impression_counts, merge_impressions
from shoprank.features.online import forget_online
from shoprank.settings import load_settings
from tests.conftest import redis_server
from tests.features.test_feast_backends import _materialise

DAY = 86_400.0


def event(kind: str, item: str, at: float) -> dict:
    return {"event_type": kind, "item_id": item, "event_time": at, "user_id": "p1"}


def test_counts_are_per_window_and_a_click_clears_the_item():
    now = 100 * DAY
    row = merge_impressions(None, [event("impression", "a", now - 2 * DAY), event("impression", "a", now - 1),
                                   event("impression", "b", now - 9 * DAY), event("impression", "c", now - 5),
                                   event("click", "c", now - 4), event("view", "d", now)], now)
    assert impression_counts(row, now, 7) == {"a": (2, 0), "c": (1, 1)}
    assert impression_counts(row, now, 10)["b"] == (1, 0)
    assert impression_counts(row, now, 1) == {"a": (1, 0), "c": (1, 1)}
    later = merge_impressions(row, [event("impression", "a", now + 40 * DAY - 1)], now + 40 * DAY)
    assert later["shown_items"] == ["a"]  # older than the 30-day window: forgotten


def test_the_row_keeps_the_newest_impressions_up_to_its_cap():
    now = 10 * DAY
    row = merge_impressions(None, [event("impression", f"i{n}", now - n) for n in range(MAX_SHOWN + 50)], now)
    assert len(row["shown_items"]) == MAX_SHOWN and row["shown_items"][0] == "i0"
    assert row["shown_at"] == sorted(row["shown_at"], reverse=True)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_pushed_impressions_are_read_back_and_erased_with_the_shopper(home, tmp_path, backend):
    import time

    if backend == "redis":
        with redis_server(tmp_path / "redis") as (url, _):
            _check_store(load_settings(feast_online_store=url), time.time())
    else:
        _check_store(load_settings(), time.time())


def _check_store(settings, now: float) -> None:
    from shoprank.features import store as feast_store

    _materialise(settings)
    store = ImpressionStore(feast_store.feature_store(settings))
    pushed = store.update([{**event("impression", "a", now - 10), "user_id": "p1"},
                           {**event("impression", "a", now - 5), "user_id": "p1"},
                           {**event("impression", "b", now - 5), "user_id": "p2"}], now=now)
    assert pushed == 2
    assert impression_counts(store.read(["p1"])["p1"], now, 7) == {"a": (2, 0)}
    store.update([{**event("click", "a", now - 1), "user_id": "p1"}], now=now + 0.5)  # a later push
    assert impression_counts(store.read(["p1"])["p1"], now, 7) == {"a": (2, 1)}
    deleted = forget_online(store.fs, {"p1"})
    assert deleted.get("user_impressions")  # rows (SQLite: one per feature) or hashes (Redis)
    assert store.read(["p1"])["p1"] is None and store.read(["p2"])["p2"] is not None
