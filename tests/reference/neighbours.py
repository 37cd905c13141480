"""User-kNN candidates in numpy/scipy: the reference the SQL job's exact kNN lists are held equal to.

Cosine similarity between users' purchase vectors (each purchase line decayed by its age, half-life
`KNN_HALF_LIFE_DAYS`), the `KNN_NEIGHBOURS` most similar users, and their items scored by similarity
x their (normalised) weight, none the user bought. Ties as the SQL breaks them: values rounded to
1e-9, then neighbours by pseudonym and items by id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprank.features.engine.queries import KNN_HALF_LIFE_DAYS, KNN_NEIGHBOURS, TOP_KNN


def user_vectors(buys: pd.DataFrame, at: pd.Timestamp) -> tuple[sp.csr_matrix, pd.Index, pd.Index]:
    """Row-normalised (users x items) purchase vectors, users and items in id order."""
    age_days = (at - buys["event_time"]).dt.total_seconds().to_numpy() / 86400.0
    weights = pd.DataFrame({"u": buys["user_key"].astype(str).to_numpy(), "i": buys["item_id"].astype(str).to_numpy(),
                            "w": np.power(0.5, age_days / KNN_HALF_LIFE_DAYS)}).groupby(["u", "i"])["w"].sum()
    users = pd.Index(sorted(set(weights.index.get_level_values(0))))
    items = pd.Index(sorted(set(weights.index.get_level_values(1))))
    rows = users.get_indexer(weights.index.get_level_values(0))
    cols = items.get_indexer(weights.index.get_level_values(1))
    matrix = sp.csr_matrix((weights.to_numpy(np.float64), (rows, cols)), shape=(len(users), len(items)))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix).tocsr(), users, items


def _ranked(cols: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` best by value rounded to 1e-9, ties by the lower code (= id order)."""
    order = np.lexsort((cols, -np.round(vals, 9)))[:k]
    return cols[order], vals[order]


def knn_candidates(buys: pd.DataFrame, users: pd.Index, at: pd.Timestamp, top: int = TOP_KNN,
                   neighbours: int = KNN_NEIGHBOURS) -> pd.DataFrame:
    """Per user (index), `user_knn_items` (best first, none bought by the user before) and `user_knn_scores`."""
    empty = pd.DataFrame({"user_knn_items": pd.Series(dtype=object), "user_knn_scores": pd.Series(dtype=object)})
    if buys.empty:
        return empty
    matrix, known, items = user_vectors(buys, at)
    wanted = [u for u in users if u in known]
    if not wanted:
        return empty
    similarity = (matrix @ matrix.T).tocsr()
    keys, items_out, scores_out = [], [], []
    for user in wanted:
        row = known.get_loc(user)
        start, end = similarity.indptr[row], similarity.indptr[row + 1]
        cols, vals = similarity.indices[start:end], similarity.data[start:end]
        mask = (cols != row) & (vals > 0)
        near, sims = _ranked(cols[mask], vals[mask], neighbours)
        if not len(near):
            continue
        scores = (sp.csr_matrix((sims, (np.zeros(len(near), int), near)), shape=(1, len(known)))
                  @ matrix).toarray().ravel()
        scores[matrix[row].indices] = 0.0  # only items new to the user
        cols = np.flatnonzero(scores > 0)
        if not len(cols):
            continue
        best, vals = _ranked(cols, scores[cols], top)
        keys.append(user)
        items_out.append(items[best].astype(str).tolist())
        scores_out.append(vals.astype("float64").tolist())
    return pd.DataFrame({"user_knn_items": items_out, "user_knn_scores": scores_out}, index=pd.Index(keys))
