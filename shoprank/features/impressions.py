"""What each shopper was shown lately and what they clicked: the suppression rule's memory.

Why per impression and not a counter: the rule is "shown M times in the last D days without a
click", and D is the merchandiser's to change; a row that keeps each impression's time (newest
first, at most MAX_SHOWN) answers it for any D up to IMPRESSION_WINDOW, and forgets on its own.
The intake pushes the row with the session (`impression` and `click` events, by pseudonym, never
for a shopper who opted out); erasure deletes it with the shopper's other online rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from shoprank.features.definitions import IMPRESSION_SCHEMA, IMPRESSION_VIEW, IMPRESSION_WINDOW
from shoprank.features.session import PushedRows

__all__ = ["ImpressionStore", "impression_counts", "merge_impressions"]

MAX_SHOWN = 500  # impressions kept per shopper, newest first
MAX_CLICKED = 200
WINDOW_S = IMPRESSION_WINDOW.total_seconds()


def _recent(items, times, now: float, cap: int) -> list[tuple[str, float]]:
    pairs = [(i, float(t)) for i, t in zip(items or [], times or [], strict=False) if now - float(t) <= WINDOW_S]
    return sorted(pairs, key=lambda p: -p[1])[:cap]


def merge_impressions(row: dict | None, events: list[dict], now: float) -> dict:
    """The `user_impressions` row after `events`: each impression and click kept with its time."""
    row = row or {}
    out = {}
    for kind, items, at, cap in (("impression", "shown_items", "shown_at", MAX_SHOWN),
                                 ("click", "clicked_items", "clicked_at", MAX_CLICKED)):
        new = [e for e in events if e["event_type"] == kind]
        out[kind] = _recent([*(row.get(items) or []), *(e["item_id"] for e in new)],
                            [*(row.get(at) or []), *(e["event_time"] for e in new)], now, cap)
    shown, clicked = out["impression"], out["click"]
    return {"shown_items": [i for i, _ in shown], "shown_at": [t for _, t in shown],
            "clicked_items": [i for i, _ in clicked], "clicked_at": [t for _, t in clicked]}


def impression_counts(row: Mapping | None, now: float, days: float) -> dict[str, tuple[int, int]]:
    """Per item, (times shown, times clicked) in the last `days` days."""
    if not row:
        return {}
    since = now - days * 86_400
    counts: dict[str, list[int]] = {}
    for item, at in zip(row.get("shown_items") or [], row.get("shown_at") or [], strict=False):
        if float(at) >= since:
            counts.setdefault(item, [0, 0])[0] += 1
    for item, at in zip(row.get("clicked_items") or [], row.get("clicked_at") or [], strict=False):
        if float(at) >= since and item in counts:
            counts[item][1] += 1
    return {item: (shown, clicked) for item, (shown, clicked) in counts.items()}


class ImpressionStore(PushedRows):
    VIEW = IMPRESSION_VIEW
    SCHEMA = IMPRESSION_SCHEMA
    TYPES = ("impression", "click")
    WINDOW_S = WINDOW_S
    merge = staticmethod(merge_impressions)
