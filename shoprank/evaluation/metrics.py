"""Top-K ranking metrics, computed once, the same way for every model and baseline.

Every number the project compares (a candidate model, the popularity bar, the production model)
goes through `evaluate_rankings`, so a difference between two numbers is a difference between the
rankings, never between two metric implementations.

Definitions (binary relevance; `truth[u]` is a set, duplicates in it are ignored):

* Users: exactly the users with a non-empty truth set. A truth user missing from `rankings` is
  scored with an empty list (all zeros), so a model that fails to answer a user is penalised rather
  than silently skipped. Rankings of users outside `truth` are ignored.
* Positions: only the first ``max(ks)`` positions of each list are read. A repeated item earns
  nothing at its second position (the slot is wasted, it is not compacted), so emitting duplicates
  can never raise a score. Lists shorter than K simply have fewer chances.
* ``recall@K`` = hits in the top K / |truth| (not / min(|truth|, K): the issue defines it on the
  truth size, which keeps recall comparable across K).
* ``ndcg@K`` = DCG@K / IDCG@K, DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1), IDCG the
  DCG of a perfect list with min(|truth|, K) hits.
* ``hr@K`` = 1 if at least one hit in the top K.
* ``mrr`` = 1 / rank of the first hit within the first max(ks) positions, 0 without one. Cutting at
  max(ks) keeps MRR comparable between models that return lists of different lengths.
* ``coverage@K`` = distinct items in the union of the evaluated users' top-K lists / `n_items`
  (catalogue coverage: how much of the shop the recommender ever shows).

All per-user metrics are means over the evaluated users. The core works on integer codes in a
2-D array, so the work is a handful of numpy operations whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Literal, TypeAlias, overload

import numpy as np
import pandas as pd

DEFAULT_KS: tuple[int, ...] = (10, 20)

Rankings: TypeAlias = Mapping[str, Sequence[str]] | np.ndarray
Truth: TypeAlias = Mapping[str, Collection[str]] | pd.DataFrame


def metric_names(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    """The summary keys, in a stable order (for tables and logs)."""
    names = [f"{m}@{k}" for m in ("recall", "ndcg", "hr") for k in ks]
    return names + ["mrr"] + [f"coverage@{k}" for k in ks]


def truth_from_frame(frame: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id") -> dict[str, list[str]]:
    """A (user, item) frame as {user: distinct items}, the form the metrics take."""
    pairs = frame[[user_col, item_col]].drop_duplicates()
    return {str(u): list(items) for u, items in pairs.groupby(user_col, sort=True)[item_col]}


def _as_truth_dict(truth: Truth) -> Mapping[str, Collection[str]]:
    if isinstance(truth, pd.DataFrame):
        return truth_from_frame(truth)
    return truth


def _codes_from_lists(
    rankings: Mapping[str, Sequence[str]], users: list[str], truth: Mapping[str, Collection[str]], depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Factorise ranked and true items into one integer space.

    Returns the rank matrix (users x depth, -1 = empty slot) and the truth as flat (row, code) pairs.
    """
    ranked = [list(rankings.get(u, ()))[:depth] for u in users]
    lengths = np.fromiter((len(r) for r in ranked), dtype=np.int64, count=len(ranked))
    true_lists = [list(dict.fromkeys(truth[u])) for u in users]
    true_lengths = np.fromiter((len(t) for t in true_lists), dtype=np.int64, count=len(true_lists))
    flat_ranked = [item for r in ranked for item in r]
    flat_true = [item for t in true_lists for item in t]
    codes, _ = pd.factorize(pd.Series(flat_ranked + flat_true, dtype=object), sort=False)
    ranked_codes, true_codes = codes[: len(flat_ranked)], codes[len(flat_ranked):]
    matrix = np.full((len(users), depth), -1, dtype=np.int64)
    rows = np.repeat(np.arange(len(users)), lengths)
    cols = np.arange(len(flat_ranked)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    matrix[rows, cols] = ranked_codes
    true_rows = np.repeat(np.arange(len(users)), true_lengths)
    return matrix, true_rows, true_codes.astype(np.int64), true_lengths


def _codes_from_array(
    rankings: np.ndarray,
    row_users: Sequence[str],
    item_vocab: Sequence[str],
    users: list[str],
    truth: Mapping[str, Collection[str]],
    depth: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Same as `_codes_from_lists` for a model's top-k index matrix (codes = vocabulary positions)."""
    if rankings.ndim != 2:
        raise ValueError(f"rankings array must be 2-D (users x positions), got shape {rankings.shape}")
    if len(row_users) != rankings.shape[0]:
        raise ValueError(f"{len(row_users)} row users for {rankings.shape[0]} ranking rows")
    index = pd.Index(list(row_users))
    if not index.is_unique:
        raise ValueError("row_users has duplicates: one ranking row per user")
    where = index.get_indexer(users)
    matrix = np.full((len(users), depth), -1, dtype=np.int64)
    found = where >= 0
    block = np.asarray(rankings[where[found], :depth], dtype=np.int64)
    block[(block < 0) | (block >= len(item_vocab))] = -1
    matrix[np.flatnonzero(found), : block.shape[1]] = block
    true_lists = [list(dict.fromkeys(truth[u])) for u in users]
    true_lengths = np.fromiter((len(t) for t in true_lists), dtype=np.int64, count=len(true_lists))
    vocab = pd.Index(list(item_vocab))
    true_codes = vocab.get_indexer([item for t in true_lists for item in t]).astype(np.int64)
    # An item unknown to the model keeps its place in |truth| but can never be hit.
    true_rows = np.repeat(np.arange(len(users)), true_lengths)
    return matrix, true_rows, true_codes, true_lengths


def _score(
    matrix: np.ndarray, true_rows: np.ndarray, true_codes: np.ndarray, true_lengths: np.ndarray,
    ks: Sequence[int],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-user metric arrays from the integer rank matrix; also the first-occurrence hit mask."""
    n_users, depth = matrix.shape
    n_codes = int(max(matrix.max(initial=-1), true_codes.max(initial=-1))) + 2
    row_ids = np.arange(n_users, dtype=np.int64)[:, None]
    keys = row_ids * n_codes + (matrix + 1)  # +1 so the empty slot (-1) maps to code 0
    valid = matrix >= 0
    # First occurrence of each (user, item): np.unique's first index in row-major order.
    flat = keys.ravel()
    _, first_idx = np.unique(flat, return_index=True)
    first = np.zeros(flat.shape, dtype=bool)
    first[first_idx] = True
    first = first.reshape(matrix.shape)
    ok = true_codes >= 0
    true_keys = true_rows[ok] * n_codes + (true_codes[ok] + 1)
    hits = np.isin(keys, true_keys) & valid & first

    ranks = np.arange(1, depth + 1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    cum_hits = np.cumsum(hits, axis=1)
    cum_dcg = np.cumsum(hits * discount, axis=1)
    cum_ideal = np.cumsum(discount)
    sizes = true_lengths.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = cum_hits[:, k - 1].astype(np.float64)
        out[f"hits@{k}"] = h
        out[f"recall@{k}"] = h / sizes
        ideal = cum_ideal[np.minimum(true_lengths, k) - 1]
        out[f"ndcg@{k}"] = cum_dcg[:, k - 1] / ideal
        out[f"hr@{k}"] = (h > 0).astype(np.float64)
    any_hit = hits.any(axis=1)
    first_rank = np.argmax(hits, axis=1) + 1
    out["rr"] = np.where(any_hit, 1.0 / first_rank, 0.0)
    return out, valid


@overload
def evaluate_rankings(
    rankings: Rankings, truth: Truth, ks: Sequence[int] = ..., *, n_items: int,
    row_users: Sequence[str] | None = ..., item_vocab: Sequence[str] | None = ...,
    per_user: Literal[False] = ...,
) -> dict[str, float]: ...


@overload
def evaluate_rankings(
    rankings: Rankings, truth: Truth, ks: Sequence[int] = ..., *, n_items: int,
    row_users: Sequence[str] | None = ..., item_vocab: Sequence[str] | None = ...,
    per_user: Literal[True],
) -> tuple[dict[str, float], pd.DataFrame]: ...


def evaluate_rankings(
    rankings: Rankings,
    truth: Truth,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    n_items: int,
    row_users: Sequence[str] | None = None,
    item_vocab: Sequence[str] | None = None,
    per_user: bool = False,
) -> dict[str, float] | tuple[dict[str, float], pd.DataFrame]:
    """Mean Recall/NDCG/HR@K, MRR and catalogue coverage@K over the users with a non-empty truth.

    rankings: {user: ranked item ids}, or a 2-D integer array of item positions in `item_vocab`
        (what `tf.math.top_k` returns), row i belonging to `row_users[i]`; negative = empty slot.
    truth: {user: items} (list or set), or a (user_id, item_id) frame.
    n_items: catalogue size, the denominator of coverage (named as the evaluate step calls it).
    per_user: also return one row per evaluated user (user_id, n_truth, hits@K, recall@K, ndcg@K,
        hr@K, rr) so slices (new users, categories) are a groupby away.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive, got {ks}")
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    truth_map = _as_truth_dict(truth)
    users = sorted(u for u, items in truth_map.items() if len(items) > 0)
    depth = max(ks)
    if isinstance(rankings, np.ndarray):
        if row_users is None or item_vocab is None:
            raise ValueError("an array of rankings needs row_users and item_vocab")
        matrix, true_rows, true_codes, true_lengths = _codes_from_array(
            rankings, row_users, item_vocab, users, truth_map, depth)
    else:
        matrix, true_rows, true_codes, true_lengths = _codes_from_lists(rankings, users, truth_map, depth)

    summary: dict[str, float]
    if not users:
        summary = {name: float("nan") for name in metric_names(ks)}
        frame = pd.DataFrame(columns=["user_id", "n_truth"])
        return (summary, frame) if per_user else summary

    per, valid = _score(matrix, true_rows, true_codes, true_lengths, ks)
    summary = {}
    for prefix in ("recall", "ndcg", "hr"):
        for k in ks:
            summary[f"{prefix}@{k}"] = float(per[f"{prefix}@{k}"].mean())
    summary["mrr"] = float(per["rr"].mean())
    for k in ks:
        shown = matrix[:, :k][valid[:, :k]]
        summary[f"coverage@{k}"] = float(np.unique(shown).size / n_items)
    if not per_user:
        return summary
    frame = pd.DataFrame({"user_id": users, "n_truth": true_lengths})
    for name in [f"{m}@{k}" for m in ("hits", "recall", "ndcg", "hr") for k in ks] + ["rr"]:
        frame[name] = per[name]
    return summary, frame


def format_table(results: Mapping[str, Mapping[str, float]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """A markdown table, one row per model, columns in `metric_names` order (for reports/bench)."""
    names = metric_names(ks)
    lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for model, metrics in results.items():
        lines.append(f"| {model} | " + " | ".join(f"{metrics.get(n, float('nan')):.4f}" for n in names) + " |")
    return "\n".join(lines)
