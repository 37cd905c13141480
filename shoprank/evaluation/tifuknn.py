"""TIFUKNN (Hu et al., SIGIR 2020) as the Reality Check study ran it, for the NBR protocol in `nbr.py`.

Ported from liming-7/A-Next-Basket-Recommendation-Reality-Check, `methods/tifuknn/tifuknn_new.py`
(functions `group_history_list`, `temporal_decay_sum_history`, `KNN`, `merge_history`), with that
repository's Ta Feng settings from its README::

    python tifuknn_new.py ../../jsondata/tafeng_history.json ../../jsondata/tafeng_future.json \\
        ../../keyset/tafeng_keyset_0.json 300 0.9 0.7 0.7 7 20
    # num_nearest_neighbors=300 within_decay_rate=0.9 group_decay_rate=0.7 alpha=0.7 group_size=7 topk=20

Why it is here: TIFUKNN is the strongest simple method on Ta Feng in the study, so it is the bar a
learned recommender must clear on this protocol next to the TopFreq baselines.

The model, for a user with history baskets b_1..b_n (oldest first), items as indicator vectors:

* within decay: basket j weighs within_decay^(n-j) (the last history basket weighs 1);
* the n baskets are cut into `group_size` consecutive groups (`group_boundaries`), each group is the
  mean of its decayed baskets, group g (0-based) weighs group_decay^(group_size-1-g), and the user
  vector is the weighted sum divided by the number of groups. With fewer baskets than `group_size`,
  every basket is its own group and the exponents still start at group_size-1 for the oldest one, as
  in the reference (so the newest basket does not weigh 1 then; ported as is);
* neighbours: the `num_neighbors` training users nearest in Euclidean distance (brute force, as
  sklearn's `NearestNeighbors(algorithm='brute')` in the reference);
* score = alpha * own vector + (1 - alpha) * mean of the neighbours' vectors; the ranking is
  ``score.argsort()[::-1]`` as in `vec2label_list` (so ties fall to the higher item index).

Differences from the reference, none of which changes a score except on exact ties: vectors are
sparse (the reference's dense user x item matrices would not fit comfortably here), distances use
|q|^2 + |p|^2 - 2 q.p like sklearn's brute Euclidean, and the neighbour set at equal distances may
be cut at a different user than sklearn's. Item indices are the sorted item ids, not the reference's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from shoprank.evaluation.nbr import UserHistory


@dataclass(frozen=True)
class TIFUKNNParams:
    num_neighbors: int = 300
    within_decay: float = 0.9
    group_decay: float = 0.7
    alpha: float = 0.7
    group_size: int = 7


# the README's command line for Ta Feng (see the module docstring)
TAFENG_PARAMS = TIFUKNNParams(num_neighbors=300, within_decay=0.9, group_decay=0.7, alpha=0.7, group_size=7)


def group_boundaries(n: int, group_size: int) -> list[tuple[int, int]]:
    """[start, end) of each group of `group_history_list` for n baskets.

    n < group_size: one basket per group. Otherwise base = n // group_size and the remainder r = n -
    base * group_size: the first group_size - r groups take base baskets, the last r take base + 1
    (the reference computes r as round((n/group_size - base) * group_size), the same integer).
    """
    if n < group_size:
        return [(j, j + 1) for j in range(n)]
    base = n // group_size
    extra = n - base * group_size
    sizes = [base] * (group_size - extra) + [base + 1] * extra
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


def basket_weights(n: int, params: TIFUKNNParams) -> np.ndarray:
    """Weight of each of n history baskets in the user vector (`temporal_decay_sum_history`):

    within_decay^(n-1-j) * group_decay^(group_size-1-g) / |group g| / number of groups, for basket j in g.
    """
    groups = group_boundaries(n, params.group_size)
    weights = np.empty(n)
    for g, (start, end) in enumerate(groups):
        for j in range(start, end):
            within = params.within_decay ** (n - 1 - j)
            weights[j] = within * params.group_decay ** (params.group_size - 1 - g) / (end - start) / len(groups)
    return weights


def user_vectors(
    histories: Mapping[str, UserHistory], users: Sequence[str], item_index: Mapping[str, int], params: TIFUKNNParams
) -> sp.csr_matrix:
    """The temporal-decayed item-frequency vector of each user, one sparse row per user."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, user in enumerate(users):
        baskets = histories[user].baskets
        for weight, basket in zip(basket_weights(len(baskets), params), baskets, strict=True):
            for item in basket:
                rows.append(r)
                cols.append(item_index[item])
                vals.append(weight)
    # one item occurs once per basket, so summing duplicates adds up the baskets' contributions
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(users), len(item_index)), dtype=np.float64)


def nearest(queries: sp.csr_matrix, pool: sp.csr_matrix, k: int, chunk: int = 512) -> np.ndarray:
    """Indices into `pool` of each query's k nearest rows by Euclidean distance (order among them free)."""
    k = min(k, pool.shape[0])
    pool_sq = np.asarray(pool.multiply(pool).sum(axis=1)).ravel()
    pool_t = pool.T.tocsr()
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for s in range(0, queries.shape[0], chunk):
        q = queries[s : s + chunk]
        q_sq = np.asarray(q.multiply(q).sum(axis=1)).ravel()
        d2 = q_sq[:, None] + pool_sq[None, :] - 2 * (q @ pool_t).toarray()
        out[s : s + chunk] = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < pool.shape[0] else np.arange(k)
    return out


class TIFUKNN:
    """A `nbr.BasketPredictor`: neighbours are drawn from `neighbour_users` (the fold's training users)."""

    def __init__(self, neighbour_users: Sequence[str], params: TIFUKNNParams = TAFENG_PARAMS, chunk: int = 512):
        self.neighbour_users = list(neighbour_users)
        self.params = params
        self.chunk = chunk

    def __call__(self, histories: Mapping[str, UserHistory], users: Sequence[str], k: int) -> dict[str, list[str]]:
        items = sorted({i for h in histories.values() for b in h.baskets for i in b})
        item_index = {item: n for n, item in enumerate(items)}
        pool = user_vectors(histories, self.neighbour_users, item_index, self.params)
        query = user_vectors(histories, users, item_index, self.params)
        neighbours = nearest(query, pool, self.params.num_neighbors, self.chunk)
        n_nb = neighbours.shape[1]
        alpha = self.params.alpha
        out: dict[str, list[str]] = {}
        for s in range(0, len(users), self.chunk):
            block = neighbours[s : s + self.chunk]
            mix = sp.csr_matrix(
                (np.full(block.size, 1.0 / n_nb), (np.repeat(np.arange(len(block)), n_nb), block.ravel())),
                shape=(len(block), pool.shape[0]),
            )
            score = (query[s : s + self.chunk] * alpha + (mix @ pool) * (1 - alpha)).toarray()
            ranked = np.argsort(score, axis=1)[:, ::-1][:, :k]  # vec2label_list: argsort()[::-1]
            for user, row in zip(users[s : s + self.chunk], ranked, strict=True):
                out[user] = [items[j] for j in row]
        return out
