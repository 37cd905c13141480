"""The search orders that need no model, as the nightly measures them and the API serves them.

`lexical`: BM25, ties by popularity (what anonymous shoppers always get). `own_frequency`: among the
matching items, what the shopper bought most often first, then popularity, then BM25: on grocery
data a shopper's own history is a strong search signal. When no search ranker beats the best of
them on the held-out week, the API serves that rule instead (`SearchServing`), and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from shoprank.search.index import SearchIndex

#: The baselines the API can serve, by the name the nightly measures them under.
SERVABLE_RULES = {"bm25_popularity": "lexical", "own_frequency": "own_frequency"}


def own_counts(user: Mapping[str, object] | None) -> dict[str, float]:
    """How often the shopper bought each of their top items (their feature row's lists)."""
    user = user or {}
    owned, counted = user.get("user_top_items"), user.get("user_top_item_counts")
    return dict(zip(map(str, [] if owned is None else owned), [] if counted is None else counted, strict=False))


def own_frequency_order(index: SearchIndex, scores: np.ndarray, user: Mapping[str, object] | None,
                        depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(index rows, own counts) of the `depth` best matching items: own count desc, popularity desc,
    BM25 desc, then index order."""
    matched = np.flatnonzero(scores > 0)
    counts = own_counts(user)
    own = np.array([float(counts.get(i, 0) or 0) for i in index.item_ids[matched]])
    order = np.lexsort((matched, -scores[matched], -index.popularity[matched], -own))[:depth]
    return matched[order], own[order]


@dataclass(frozen=True)
class SearchServing:
    """What the API serves known shoppers tonight: `ranker` (the `stable` search ranker) or a rule."""

    serve: str = "ranker"  # ranker | lexical | own_frequency
    why: str = "the search ranker is served"
    metric: str | None = None
    value: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SearchServing:
        serve = str(data.get("serve", "ranker"))
        if serve not in ("ranker", *SERVABLE_RULES.values()):
            raise ValueError(f"search serving decision: unknown `serve` {serve!r}")
        value = data.get("value")
        return cls(serve, str(data.get("why", "")), data.get("metric"),  # type: ignore[arg-type]
                   float(value) if isinstance(value, int | float) else None)
