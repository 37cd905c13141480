"""The search ranker's inputs: the recommender's user x item features plus query-item match features.

One definition each, offline and online, as for the recommender: `query_columns` computes the match
features of one query's candidates from the index (called once per query by the training set, once
per request by the API), and the user x item part is `derived`'s (point-in-time Feast rows offline,
the online row per request). The calendar context is left out: a query is answered now, not for a
label window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shoprank.features.derived import NUMERIC_FEATURES, STRING_FEATURES
from shoprank.features.session_inputs import SESSION_INPUTS
from shoprank.search.index import FIELDS, SearchIndex

QUERY_FEATURES = [
    "q_bm25",  # the lexical score
    "q_bm25_rel",  # the score over the query's best candidate's (queries differ in scale)
    "q_title_overlap", "q_category_overlap", "q_brand_overlap",  # share of query terms found per field
    "q_exact_category",  # every word of the item's category is in the query
    "q_exact_brand",  # the item's brand is in the query
    "ub_share",  # the share of the user's purchases (own top items) that were of the item's brand
]
# Where the candidate stands among this query's candidates: a query's match set is one shelf, and
# "the user's most bought item on this shelf" or "the shelf's best seller" is relative to the shelf.
LIST_FEATURES = [
    "q_own_rank_recip",  # 1 / rank by the user's purchase count among the candidates (0: never bought)
    "q_own_share",  # the item's share of the user's purchases among the candidates
    "q_pop_rank_recip",  # 1 / rank by 30-day purchases (Feast, point-in-time) among the candidates
]
# No calendar context; no session inputs yet (the search training set has no request-time rows)
SEARCH_NUMERIC = [name for name in NUMERIC_FEATURES if name != "ctx_event_share" and name not in SESSION_INPUTS] \
    + QUERY_FEATURES + LIST_FEATURES
SEARCH_STRING = list(STRING_FEATURES)
SEARCH_FEATURES = (SEARCH_NUMERIC, SEARCH_STRING)


def brand_shares(top_items: Sequence[str] | None, counts: Sequence[float] | None,
                 brand_of: Mapping[str, str]) -> dict[str, float]:
    """Share of the user's purchase count per brand, over the user's own top items."""
    items = list(top_items) if top_items is not None else []
    weights = list(counts) if counts is not None and len(counts) == len(items) else [1.0] * len(items)
    totals: dict[str, float] = {}
    for item, weight in zip(items, weights, strict=True):
        brand = brand_of.get(str(item), "")
        if brand:
            totals[brand] = totals.get(brand, 0.0) + float(weight or 0.0)
    whole = sum(weights) if weights else 0.0
    return {brand: value / whole for brand, value in totals.items()} if whole > 0 else {}


def query_columns(index: SearchIndex, query_tokens: Sequence[str], rows: np.ndarray, bm25: np.ndarray,
                  user: Mapping[str, object] | None) -> dict[str, np.ndarray]:
    """Match features of one query's candidates (index `rows`, with their BM25) for a user (their Feast
    row; None: anonymous). The lexical place is not a feature: its popularity tie-break is the
    index's, as of the night it was built, which training queries from earlier weeks must not see
    (the item features carry popularity point-in-time)."""
    n = len(rows)
    query = frozenset(query_tokens)
    size = max(len(query), 1)
    out: dict[str, np.ndarray] = {"q_bm25": bm25.astype("float64")}
    best = float(bm25.max()) if n else 0.0
    out["q_bm25_rel"] = bm25 / best if best > 0 else np.zeros(n)
    for name in FIELDS:
        sets = index.field_tokens[name]
        out[f"q_{name}_overlap"] = np.array([len(query & sets[r]) / size for r in rows], dtype="float64")
    category, brand = index.field_tokens["category"], index.field_tokens["brand"]
    out["q_exact_category"] = np.array([float(bool(category[r]) and category[r] <= query) for r in rows])
    out["q_exact_brand"] = np.array([float(bool(brand[r]) and brand[r] <= query) for r in rows])
    shares = brand_shares(user.get("user_top_items") if user else None,
                          user.get("user_top_item_counts") if user else None, index.brand_of)
    out["ub_share"] = np.array([shares.get(index.brand[r], 0.0) for r in rows], dtype="float64")
    return out


def rank_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based rank of each value within its group, largest first, ties sharing the best rank."""
    n = len(values)
    if n == 0:
        return np.zeros(0)
    order = np.lexsort((-values, groups))
    v, g = values[order], groups[order]
    pos = np.arange(n)
    new_group = np.r_[True, g[1:] != g[:-1]]
    new_value = new_group | np.r_[True, v[1:] != v[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    value_start = np.maximum.accumulate(np.where(new_value, pos, 0))
    ranks = np.empty(n)
    ranks[order] = value_start - group_start + 1
    return ranks


def list_columns(ui_count: np.ndarray, item_pop_30d: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """The LIST_FEATURES of candidate rows; `groups` names each row's query (one query online)."""
    own = np.nan_to_num(np.asarray(ui_count, dtype="float64"))
    pop = np.nan_to_num(np.asarray(item_pop_30d, dtype="float64"))
    codes = np.unique(groups, return_inverse=True)[1] if len(groups) else np.zeros(0, dtype=np.int64)
    totals = np.bincount(codes, weights=own)[codes] if len(own) else np.zeros(0)
    return {"q_own_rank_recip": np.where(own > 0, 1.0 / rank_within(own, codes), 0.0),
            "q_own_share": np.where(totals > 0, own / np.maximum(totals, 1e-9), 0.0),
            "q_pop_rank_recip": 1.0 / rank_within(pop, codes)}


def own_matches(index: SearchIndex, scores: np.ndarray, user: Mapping[str, object] | None,
                exclude: np.ndarray) -> np.ndarray:
    """Index rows of the user's own top items that match the query and are not already in `exclude`."""
    own = user.get("user_top_items") if user else None
    if own is None or len(own) == 0:  # type: ignore[arg-type]
        return np.zeros(0, dtype=np.int64)
    rows = index.rows_of(own)  # type: ignore[arg-type]
    rows = rows[rows >= 0]
    rows = rows[scores[rows] > 0]
    rows = rows[np.sort(np.unique(rows, return_index=True)[1])]  # once each, in the user's order
    return rows[~np.isin(rows, exclude)]


@dataclass(frozen=True)
class Candidates:
    """What the search ranker ranks for one query: the lexical top-n, then the user's own matching
    items the lexical cut missed. Offline and online build them with this one function."""

    rows: np.ndarray  # index rows
    bm25: np.ndarray
    lexical_pos: np.ndarray  # place in the lexical order, -1 for an own match
    tied: np.ndarray  # lexical rows placed by popularity (same BM25 as the row before)
    n_matched: int  # items matching the query at all

    def __len__(self) -> int:
        return len(self.rows)


def search_candidates(index: SearchIndex, query_tokens: Sequence[str], user: Mapping[str, object] | None,
                      n: int) -> Candidates:
    scores = index.scores(list(query_tokens))
    lexical = index.lexical(list(query_tokens), n, scores)
    own = own_matches(index, scores, user, lexical.rows)
    rows = np.concatenate([lexical.rows, own])
    return Candidates(rows, scores[rows].astype("float64"),
                      np.r_[np.arange(len(lexical.rows)), np.full(len(own), -1)],
                      np.r_[lexical.tied, np.zeros(len(own), dtype=bool)], lexical.n_matched)
