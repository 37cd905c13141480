"""The simple, exact recommenders: candidate generators for the features and the online cold-start
path, and the baselines every model must beat (`shoprank.evaluation.baselines` judges with them).

They live in the features layer because the nightly's features use them (the user co-occurrence list
is `ItemCooccurrence`, fitted point-in-time), and evaluation sits above features.

All recommenders follow `Recommender`: `fit(train_events)` then
`recommend(user_ids, k, exclude=None) -> {user: [item, ...]}`. `exclude[u]` items are never
returned (leave-last-out passes the user's history). Users unknown at fit time get the popular list.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, Self, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd

try:  # scipy is in the locked environment (via TensorFlow/sklearn deps); the co-occurrence needs it
    import scipy.sparse as sp
except ImportError:  # pragma: no cover - exercised only in a stripped environment
    sp = None

Exclude: TypeAlias = Mapping[str, Collection[str]] | None


@runtime_checkable
class Recommender(Protocol):
    """What the evaluation and the online cold-start path need from any recommender."""

    name: str

    def fit(self, train: pd.DataFrame) -> Self:
        """Learn from canonical events (those of `Split.train`)."""
        ...

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        """Top-k item ids per user, best first, no duplicates, none of `exclude[user]`."""
        ...


def _purchases(train: pd.DataFrame) -> pd.DataFrame:
    """The item-bearing rows of the train frame (a Split's train already holds only interactions)."""
    return train.loc[train["item_id"].notna(), ["event_time", "user_id", "item_id", "session_id"]]


def _fill(first: list[str], ranked: Sequence[str], k: int, banned: Collection[str]) -> list[str]:
    """`first`, then items of `ranked` not already there nor banned, up to k."""
    out = list(first[:k])
    if len(out) >= k:
        return out
    seen = set(out)
    for item in ranked:
        if item not in seen and item not in banned:
            out.append(item)
            seen.add(item)
            if len(out) == k:
                break
    return out


class PopularityRecommender:
    """The items bought by the most distinct users in the last `window_days` before the cut-off.

    Distinct buyers, not purchase lines or quantities: the truth is the set of distinct items a user
    buys, so the expected hits of an item grow with how many people buy it, and one bulk buyer (Ta
    Feng has lines of 1,200 units) cannot push an item up. Ties: more purchase events in the window,
    then more distinct buyers over the whole train frame, then item id. The cut-off is `as_of` when
    given, else the latest event of the train frame (for a temporal split, the last day before T):
    the window is [as_of - window_days, as_of) with `as_of`, (last - window_days, last] without.
    window_days None: all of the train frame. Items outside the window follow in all-time order, so
    the list is long enough to fill any k even after exclusions.
    """

    name = "popularity"

    def __init__(self, window_days: float | None = 30, as_of: pd.Timestamp | str | None = None) -> None:
        self.window_days = window_days
        self.as_of = None if as_of is None else pd.Timestamp(as_of)
        self.ranked_: list[str] = []
        self.rank_: dict[str, int] = {}

    def fit(self, train: pd.DataFrame) -> Self:
        buys = _purchases(train)
        times = buys["event_time"]
        if self.window_days is None or len(buys) == 0:
            window = buys
        elif self.as_of is not None:
            as_of = self.as_of
            if as_of.tzinfo is None and times.dt.tz is not None:
                as_of = as_of.tz_localize("UTC")  # canonical events are UTC
            window = buys.loc[(times >= as_of - pd.Timedelta(days=self.window_days)) & (times < as_of)]
        else:
            last = times.max()
            window = buys.loc[times > last - pd.Timedelta(days=self.window_days)]
        stats = pd.DataFrame({
            "buyers": window.groupby("item_id")["user_id"].nunique(),
            "events": window.groupby("item_id").size(),
        })
        stats = stats.reindex(pd.Index(buys["item_id"].unique(), name="item_id")).fillna(0)
        stats["all_buyers"] = buys.groupby("item_id")["user_id"].nunique()
        stats = stats.reset_index().sort_values(
            ["buyers", "events", "all_buyers", "item_id"], ascending=[False, False, False, True], kind="mergesort")
        self.ranked_ = stats["item_id"].astype(str).tolist()
        self.rank_ = {item: r for r, item in enumerate(self.ranked_)}
        return self

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        top = self.ranked_[:k]
        if not exclude:
            return {u: list(top) for u in user_ids}
        empty: Collection[str] = ()
        return {u: _fill([], self.ranked_, k, exclude.get(u, empty)) for u in user_ids}


class _PopularFallback:
    """Shared by the personal recommenders: a popularity model for users without (usable) history."""

    def __init__(self, window_days: float | None, as_of: pd.Timestamp | str | None) -> None:
        self.popular = PopularityRecommender(window_days, as_of)

    def _fallback(self, user: str, k: int, exclude: Exclude) -> list[str]:
        banned: Collection[str] = exclude.get(user, ()) if exclude else ()
        return _fill([], self.popular.ranked_, k, banned)


def _exclude_frame(exclude: Exclude, users: Sequence[str]) -> pd.DataFrame:
    if not exclude:
        return pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object)})
    wanted = [u for u in users if u in exclude]
    return pd.DataFrame({
        "user_id": [u for u in wanted for _ in exclude[u]],
        "item_id": [i for u in wanted for i in exclude[u]],
    })


class PersonalTopFrequency(_PopularFallback):
    """The user's own items, most bought first (the repurchase baseline, "P-TopFreq").

    Frequency = the number of purchase events (on Ta Feng one event = one item in one basket-day, so
    this is the number of baskets containing the item); ties: the more recent last purchase, then
    item id. Known users get only their own items, possibly fewer than k (that shortfall is what
    `PersonalThenPopular` fills); users with no history get the popular list. With `exclude` (e.g.
    leave-last-out, which bans the whole history) a known user can be left with an empty list.
    """

    name = "personal_top_frequency"

    def __init__(self, window_days: float | None = 30, as_of: pd.Timestamp | str | None = None) -> None:
        super().__init__(window_days, as_of)
        self.table_ = pd.DataFrame()

    def fit(self, train: pd.DataFrame) -> Self:
        buys = _purchases(train)
        self.popular.fit(train)
        table = buys.groupby(["user_id", "item_id"], sort=False).agg(
            count=("event_time", "size"), last=("event_time", "max")).reset_index()
        self.table_ = table.sort_values(["user_id", "count", "last", "item_id"],
                                        ascending=[True, False, False, True], kind="mergesort")
        self.known_ = set(self.table_["user_id"].unique())
        return self

    def _personal(self, user_ids: Sequence[str], k: int, exclude: Exclude) -> dict[str, list[str]]:
        """Own items only, for the known users among `user_ids` (in ranked order, cut at k)."""
        table = self.table_.loc[self.table_["user_id"].isin(set(user_ids))]
        if exclude:
            ban = _exclude_frame(exclude, user_ids)
            if len(ban):
                keys = pd.MultiIndex.from_frame(table[["user_id", "item_id"]])
                table = table.loc[~keys.isin(pd.MultiIndex.from_frame(ban))]
        table = table.groupby("user_id", sort=False).head(k)
        users = table["user_id"].to_numpy()
        items = table["item_id"].to_numpy()
        if len(users) == 0:
            return {}
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        return {str(users[s]): items[s:e].tolist() for s, e in zip(starts, ends, strict=True)}

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        own = self._personal(user_ids, k, exclude)
        return {u: own.get(u, []) if u in self.known_ else self._fallback(u, k, exclude) for u in user_ids}


class PersonalThenPopular(PersonalTopFrequency):
    """`PersonalTopFrequency`, then popular items the user has not got in the list, up to k.

    The strongest simple bar on grocery data (the P-TopFreq of the Reality Check paper fills the
    same way), and what the online path serves to users the models know too little about.
    """

    name = "personal_then_popular"

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        own = self._personal(user_ids, k, exclude)
        out = {}
        for u in user_ids:
            banned: Collection[str] = exclude.get(u, ()) if exclude else ()
            out[u] = _fill(own.get(u, []), self.popular.ranked_, k, banned)
        return out


def _top_in_row(values: np.ndarray, cols: np.ndarray, m: int) -> np.ndarray:
    """Positions of the m best entries: value descending, then column (= popularity rank) ascending.

    Exact under ties: every entry tied with the m-th value is sorted, not picked arbitrarily.
    """
    if len(values) > m:
        kth = np.partition(values, len(values) - m)[len(values) - m]
        keep = np.flatnonzero(values >= kth)
    else:
        keep = np.arange(len(values))
    order = np.lexsort((cols[keep], -values[keep]))
    return keep[order[:m]]


class ItemCooccurrence(_PopularFallback):
    """Item-to-item co-occurrence ("bought together"), scored from the user's history.

    Contexts: `context="basket"` (default) counts two items as co-occurring when bought in the same
    basket (session_id; Ta Feng: one customer-day), the classic "bought together" signal that also
    serves a session online; `context="user"` uses whole user histories in the train frame. Rows
    without a session id are one-item contexts of their own (they add popularity, no pair).

    C[i, j] = number of contexts holding both i and j (i != j), n_i = contexts holding i. Similarity:
    `normalisation="conditional"` (default) sim(i -> j) = C[i, j] / n_i, the share of i's contexts
    that also hold j, an estimate of P(j | i); `"cosine"` C[i, j] / sqrt(n_i n_j), which favours the
    long tail (an item sold once with another gets similarity 1 to it). Each item keeps only its
    `neighbours` most similar items (item-kNN; ties by popularity), which both removes noise and makes
    scoring a sparse product of cost |history| x neighbours instead of a near-dense one; None keeps
    all. A user's score for j = sum over their distinct history items i of sim(i -> j) (binary
    history, so one huge basket does not outweigh the rest). The defaults were chosen on the temporal
    *validation* split (4-31 January 2001), never on the test period: basket beat user contexts on
    NDCG@20 and MRR, conditional beat cosine on every accuracy metric (cosine fills lists with
    one-off items), and 500 neighbours matched the unpruned scores (recall@20 0.0591 vs 0.0593) at
    a fraction of the cost.

    Items are ranked by score, ties (including all zero scores) by the popularity order, so the list
    is always k long and a user with no history gets exactly the popular list. The user's own items
    are not removed (in the temporal protocol repurchase is allowed); `exclude` removes what it lists.
    """

    name = "item_cooccurrence"

    def __init__(self, context: str = "basket", normalisation: str = "conditional", neighbours: int | None = 500,
                 window_days: float | None = 30, as_of: pd.Timestamp | str | None = None,
                 batch_users: int = 4096) -> None:
        if context not in ("basket", "user"):
            raise ValueError(f"context must be 'basket' or 'user', got {context!r}")
        if normalisation not in ("conditional", "cosine"):
            raise ValueError(f"normalisation must be 'conditional' or 'cosine', got {normalisation!r}")
        if sp is None:
            raise ImportError("ItemCooccurrence needs scipy")
        super().__init__(window_days, as_of)
        self.context = context
        self.normalisation = normalisation
        self.neighbours = neighbours
        self.batch_users = batch_users

    def fit(self, train: pd.DataFrame) -> Self:
        buys = _purchases(train)
        self.popular.fit(train)
        # Item codes in popularity order: code 0 is the most popular item, so "ties by popularity"
        # is "ties by smaller code" everywhere below.
        self.items_ = np.asarray(self.popular.ranked_, dtype=object)
        self.item_index_ = pd.Index(self.items_)
        n_items = len(self.items_)
        item_codes = self.item_index_.get_indexer(buys["item_id"])
        if self.context == "basket":
            ctx = buys["session_id"].astype(object)
            missing = ctx.isna().to_numpy()
            ctx = ctx.to_numpy()
            ctx[missing] = [f"\x00row{i}" for i in np.flatnonzero(missing)]
        else:
            ctx = buys["user_id"].to_numpy()
        ctx_codes, ctx_values = pd.factorize(ctx)
        x = sp.csr_matrix((np.ones(len(item_codes)), (ctx_codes, item_codes)), shape=(len(ctx_values), n_items))
        x.data[:] = 1.0  # an item twice in a context was summed: back to presence
        co = (x.T @ x).tocsr()
        counts = co.diagonal().copy()
        co.setdiag(0.0)
        co.eliminate_zeros()
        inv = 1.0 / np.maximum(counts, 1.0)
        if self.normalisation == "conditional":
            sim = (sp.diags(inv) @ co).tocsr()
        else:
            root = np.sqrt(inv)
            sim = (sp.diags(root) @ co @ sp.diags(root)).tocsr()
        self.sim_ = self._prune(sim) if self.neighbours is not None else sim
        user_codes, users = pd.factorize(buys["user_id"])
        self.user_index_ = pd.Index(users)
        h = sp.csr_matrix((np.ones(len(item_codes)), (user_codes, item_codes)), shape=(len(users), n_items))
        h.data[:] = 1.0
        self.history_ = h
        return self

    def _prune(self, sim: sp.csr_matrix) -> sp.csr_matrix:
        """Keep each row's `neighbours` best entries (exact, ties by popularity)."""
        m = int(self.neighbours or 0)
        sim.sort_indices()
        indptr, indices, data = sim.indptr, sim.indices, sim.data
        keep_parts = []
        for row in np.flatnonzero(np.diff(indptr) > 0):
            s, e = indptr[row], indptr[row + 1]
            keep_parts.append(s + np.sort(_top_in_row(data[s:e], indices[s:e], m)))
        keep = np.concatenate(keep_parts) if keep_parts else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(sim.shape[0]), np.diff(indptr))[keep]
        return sp.csr_matrix((data[keep], (rows, indices[keep])), shape=sim.shape)

    def scores(self, user_ids: Sequence[str]) -> sp.csr_matrix:
        """Sparse user x item scores (columns in `items_` order); rows of unknown users are empty."""
        rows = self.user_index_.get_indexer(list(user_ids))
        known = rows >= 0
        h = self.history_[np.where(known, rows, 0)]
        h = (sp.diags(known.astype(np.float64)) @ h).tocsr()
        h.eliminate_zeros()  # unknown users' placeholder rows become empty, not explicit zeros
        return (h @ self.sim_).tocsr()

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Exclude = None) -> dict[str, list[str]]:
        user_ids = list(user_ids)
        if k <= 0:
            return {u: [] for u in user_ids}
        out: dict[str, list[str]] = {}
        for start in range(0, len(user_ids), self.batch_users):
            batch = user_ids[start:start + self.batch_users]
            out.update(self._recommend_batch(batch, k, exclude))
        return out

    def _recommend_batch(self, users: list[str], k: int, exclude: Exclude) -> dict[str, list[str]]:
        r = self.scores(users)
        if exclude:
            # Drop banned (user, item) entries for the whole batch in one sparse operation.
            ban = _exclude_frame(exclude, users)
            rows = pd.Index(users).get_indexer(ban["user_id"])
            codes = self.item_index_.get_indexer(ban["item_id"])
            ok = codes >= 0
            banned_mask = sp.csr_matrix((np.ones(int(ok.sum())), (rows[ok], codes[ok])), shape=r.shape)
            banned_mask.data[:] = 1.0
            r = (r - r.multiply(banned_mask)).tocsr()
            r.eliminate_zeros()
        indptr, indices, data = r.indptr, r.indices, r.data
        result: dict[str, list[str]] = {}
        for i, u in enumerate(users):
            s, e = indptr[i], indptr[i + 1]
            cols, vals = indices[s:e], data[s:e]
            banned: Collection[str] = exclude.get(u, ()) if exclude else ()
            ranked = self.items_[cols[_top_in_row(vals, cols, k)]].tolist() if len(cols) else []
            if len(ranked) < k:
                # zero-score items follow in popularity order (their tie-break), minus the banned
                ranked = _fill(ranked, self.popular.ranked_, k, banned)
            result[u] = ranked
        return result
