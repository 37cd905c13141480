"""Next-basket recommendation (NBR) as the "Reality Check" paper evaluates it (Li et al., TOIS 2023).

Why a separate protocol: the NBR literature reports its numbers on one specific preparation of Ta Feng
(one basket per customer-day, the last basket as the target, users split 72/8/20), with its own metric
code. Scoring our models and the frequency baselines the same way is the only way to put them next to
the published table; the project's own protocols (`shoprank.evaluation.protocols`) answer a different
question (what happens tomorrow in the shop). Reference implementation ported here: the repository
liming-7/A-Next-Basket-Recommendation-Reality-Check (`preprocess/tafeng.py`, `keyset_fold.py`,
`evaluation/metrics.py`, `evaluation/model_performance.py`, `methods/g-p-gp-topfreq/*.py`).

The protocol, step by step (each step is the reference code's, the choices it leaves open are named):

1. Purchases only; one basket = the distinct items one customer bought on one calendar day.
2. Users with 3 to 50 baskets (distinct days) are kept (`preprocess/tafeng.py`).
3. Each kept user's chronologically last basket is the target; the earlier ones are the history.
4. Items seen fewer than 3 times in the history baskets of the kept users are removed from every basket
   (history and target), as the reference script counts them (over 'prior' rows only).
5. Baskets emptied by step 4 disappear; a user whose target became empty, or who is left with fewer
   than 3 baskets, is dropped. The reference script stops after step 4; its published data has no empty
   basket and no user under 3 baskets, so this is the reading that matches its output's shape. The
   counts of every step are kept in `PreprocessCounts` so the effect of this choice is visible (on
   Ta Feng: 14,036 users after step 2, 13,947 with a non-empty target, 13,929 with 3+ baskets).
6. Folds: the users are shuffled and cut 72/8/20 into train/validation/test (`keyset_fold.py`:
   ``user[:int(n*4/5*0.9)]``, ``user[int(n*4/5*0.9):int(n*4/5)]``, ``user[int(n*4/5):]``). The
   reference calls ``random.shuffle`` unseeded and stores the outcome in keyset files; here fold *i* is
   ``random.Random(seed_i).shuffle`` of the sorted user ids with seeds `FOLD_SEEDS` = 0..4, so the five
   keysets can be rebuilt instead of shipped.
7. Metrics per test user, averaged over the fold's test users: Recall@K, NDCG@K and PHR@K at K = 10, 20
   (see `recall_at_k`, `ndcg_at_k`, `phr_at_k` for the exact formulas and why they are not the
   project's `metrics.py` ones). The paper averages the per-fold means over the folds.

Known difference with the published data (counted by `bench/bench_nbr.py`; what a one-off matching of
users found is in its JSON): the reference repository's own preprocessed Ta Feng has 13,858 users and
11,997 items, where the published script on the public CSV gives the counts above. For about a fifth of
its users the baskets are ordered by month but not by day within the month, three users have 51
baskets, and only 312 of its items occur fewer than 5 times in the histories (9,307 before the item
filter here); it was not produced by the published script from this CSV. `dataset_from_merged` loads
that published file so the methods can be scored on it too.

Hook for other models (the served ranker): a predictor receives every user's `UserHistory`, which
carries the history baskets with their dates and the *target date* (the day of the withheld basket), so
a model whose features live in a feature store can read them point-in-time at that date.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

Basket = tuple[str, ...]

KS: tuple[int, ...] = (10, 20)
FOLD_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
MIN_BASKETS = 3
MAX_BASKETS = 50
MIN_ITEM_COUNT = 3
PUBLISHED_TAFENG = {"users": 13_858, "items": 11_997}  # the repository's CLEA/DNNTSP arguments and its data
METRICS: tuple[str, ...] = tuple(f"{m}@{k}" for m in ("recall", "ndcg", "phr") for k in KS)


@dataclass(frozen=True)
class UserHistory:
    """What a model may see of one user: the history baskets, oldest first, and when the target happened.

    `dates[i]` is the day of `baskets[i]`; `target_date` is the day of the withheld last basket. Both are
    None for data published without dates (`dataset_from_merged`). Items inside a basket are sorted so
    that everything downstream (tie-breaks included) is independent of the input's row order.
    """

    baskets: tuple[Basket, ...]
    dates: tuple[pd.Timestamp, ...] | None = None
    target_date: pd.Timestamp | None = None


@dataclass(frozen=True)
class PreprocessCounts:
    """Sizes after each step of the preparation, to compare with the published ones step by step."""

    purchase_rows: int
    users_raw: int
    items_raw: int
    user_days_raw: int
    users_in_basket_range: int  # step 2: 3..50 distinct days
    items_before_item_filter: int  # items bought by those users
    items_kept: int  # step 4: seen >= 3 times in the history baskets
    users_with_target: int  # step 5: the target is non-empty after step 4
    users: int  # step 5: ... and 3+ non-empty baskets remain (the final population)
    items: int  # distinct items in the final population's baskets
    baskets: int  # history + target baskets of the final population
    history_rows: int  # (user, basket, item) rows in history baskets
    target_rows: int  # (user, item) rows in target baskets


@dataclass(frozen=True)
class NBRDataset:
    """Every kept user's history and target; `histories` never contains a target basket."""

    histories: Mapping[str, UserHistory]
    targets: Mapping[str, Basket]
    counts: PreprocessCounts | None = None
    source: str = ""

    @property
    def users(self) -> list[str]:
        return sorted(self.targets)

    def items(self) -> set[str]:
        found = {i for h in self.histories.values() for b in h.baskets for i in b}
        return found | {i for t in self.targets.values() for i in t}


def preprocess(
    events: pd.DataFrame,
    min_baskets: int = MIN_BASKETS,
    max_baskets: int = MAX_BASKETS,
    min_item_count: int = MIN_ITEM_COUNT,
    source: str = "",
) -> NBRDataset:
    """Canonical events (user_id, item_id, event_type, event_time) -> `NBRDataset` by steps 1-5 above.

    A basket is a calendar day of the event time (Ta Feng has dates only); a user's days are sorted by
    date, so the target is always the chronologically last day.
    """
    rows = events.loc[events["event_type"] == "purchase", ["user_id", "item_id", "event_time"]].dropna()
    purchase_rows = len(rows)
    rows = pd.DataFrame(
        {"user_id": rows["user_id"].astype(str), "item_id": rows["item_id"].astype(str),
         "day": pd.to_datetime(rows["event_time"]).dt.normalize()}
    ).drop_duplicates(["user_id", "day", "item_id"])
    users_raw, items_raw = rows["user_id"].nunique(), rows["item_id"].nunique()
    user_days_raw = len(rows[["user_id", "day"]].drop_duplicates())

    n_days = rows.groupby("user_id")["day"].nunique()
    kept_users = n_days.index[(n_days >= min_baskets) & (n_days <= max_baskets)]
    rows = rows[rows["user_id"].isin(kept_users)]
    rows = rows.assign(target=rows["day"] == rows.groupby("user_id")["day"].transform("max"))
    items_before = rows["item_id"].nunique()

    counts = rows.loc[~rows["target"], "item_id"].value_counts()
    kept_items = counts.index[counts >= min_item_count]
    rows = rows[rows["item_id"].isin(kept_items)]

    with_target = rows.loc[rows["target"], "user_id"].unique()
    rows = rows[rows["user_id"].isin(with_target)]
    n_left = rows.groupby("user_id")["day"].nunique()
    rows = rows[rows["user_id"].isin(n_left.index[n_left >= min_baskets])]

    histories, targets = _baskets_by_user(rows)
    final = PreprocessCounts(
        purchase_rows=purchase_rows, users_raw=users_raw, items_raw=items_raw, user_days_raw=user_days_raw,
        users_in_basket_range=len(kept_users), items_before_item_filter=items_before, items_kept=len(kept_items),
        users_with_target=len(with_target), users=len(targets), items=rows["item_id"].nunique(),
        baskets=len(rows[["user_id", "day"]].drop_duplicates()), history_rows=int((~rows["target"]).sum()),
        target_rows=int(rows["target"].sum()),
    )
    return NBRDataset(histories=histories, targets=targets, counts=final, source=source)


def _baskets_by_user(rows: pd.DataFrame) -> tuple[dict[str, UserHistory], dict[str, Basket]]:
    """(user_id, item_id, day, target) rows -> histories and targets, items sorted inside each basket."""
    rows = rows.sort_values(["user_id", "day", "item_id"], kind="stable")
    histories: dict[str, UserHistory] = {}
    targets: dict[str, Basket] = {}
    users, days, items = rows["user_id"].to_numpy(), rows["day"].to_numpy(), rows["item_id"].to_numpy()
    # boundaries of (user, day) runs in the sorted rows, then of users
    new_basket = np.ones(len(rows), dtype=bool)
    new_basket[1:] = (users[1:] != users[:-1]) | (days[1:] != days[:-1])
    starts = np.flatnonzero(new_basket)
    ends = np.append(starts[1:], len(rows))
    day_index = pd.DatetimeIndex(rows["day"])
    per_user: dict[str, list[tuple[pd.Timestamp, Basket]]] = {}
    for s, e in zip(starts, ends, strict=True):
        per_user.setdefault(users[s], []).append((day_index[s], tuple(items[s:e])))
    for user, baskets in per_user.items():
        *history, (target_day, target) = baskets
        histories[user] = UserHistory(
            baskets=tuple(b for _, b in history), dates=tuple(d for d, _ in history), target_date=target_day
        )
        targets[user] = target
    return histories, targets


def dataset_from_merged(merged: Mapping[str, Sequence[Sequence[int | str]]], source: str = "") -> NBRDataset:
    """The reference repository's `mergeddataset/{name}_merged.json` ({user: [basket, ...]}, last = target).

    Used to score methods on exactly the published preprocessing. The file has no dates, so
    `target_date` is None; baskets are taken in the file's order (which is the order the reference's
    methods read them in, chronological or not).
    """
    histories: dict[str, UserHistory] = {}
    targets: dict[str, Basket] = {}
    for user, baskets in merged.items():
        clean = [tuple(sorted({str(i) for i in b})) for b in baskets]
        clean = [b for b in clean if b]
        if len(clean) < 2:
            continue
        histories[str(user)] = UserHistory(baskets=tuple(clean[:-1]))
        targets[str(user)] = clean[-1]
    n_items = len({i for b in merged.values() for basket in b for i in basket})
    history_rows = sum(len(b) for h in histories.values() for b in h.baskets)
    counts = PreprocessCounts(
        purchase_rows=0, users_raw=len(merged), items_raw=n_items, user_days_raw=0, users_in_basket_range=len(merged),
        items_before_item_filter=n_items, items_kept=n_items, users_with_target=len(targets), users=len(targets),
        items=n_items, baskets=sum(len(h.baskets) + 1 for h in histories.values()), history_rows=history_rows,
        target_rows=sum(len(t) for t in targets.values()),
    )
    return NBRDataset(histories=histories, targets=targets, counts=counts, source=source)


# --- folds -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """One keyset: disjoint train / validation / test users (72 / 8 / 20 %), drawn with `seed`."""

    seed: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def make_fold(users: Iterable[str], seed: int) -> Fold:
    """`keyset_fold.py` with a seed: shuffle the (sorted) users, then cut at 4/5*0.9 and 4/5 of them.

    The cut points are the reference's float expressions (``int(n*4/5*0.9)``), so the sizes match a
    keyset file of the same population exactly.
    """
    order = sorted(set(users))
    random.Random(seed).shuffle(order)
    n = len(order)
    cut_train, cut_val = int(n * 4 / 5 * 0.9), int(n * 4 / 5)
    return Fold(seed=seed, train=tuple(order[:cut_train]), val=tuple(order[cut_train:cut_val]),
                test=tuple(order[cut_val:]))


def make_folds(users: Iterable[str], seeds: Sequence[int] = FOLD_SEEDS) -> list[Fold]:
    users = list(users)
    return [make_fold(users, seed) for seed in seeds]


# --- metrics (evaluation/metrics.py of the reference, line for line) ----------------------------------


def recall_at_k(truth: Sequence[str], pred: Sequence[str], k: int) -> float:
    """hits in pred[:k] / |truth|.

    The denominator is the whole target basket, not min(|truth|, k): a 30-item basket can reach at most
    20/30 at K = 20. That is the reference's `get_Recall`, and the paper's numbers depend on it.
    """
    truth_set = set(truth)
    return sum(1 for p in pred[:k] if p in truth_set) / len(truth_set)


def ndcg_at_k(truth: Sequence[str], pred: Sequence[str], k: int) -> float:
    """DCG@k / IDCG over *all* target items: sum_{r<=k, pred_r in truth} 1/log2(r+1) / sum_{i=1..|truth|} 1/log2(i+1).

    The reference's `get_NDCG` sums the ideal DCG over every target item, also those beyond rank k, so
    NDCG@10 of a perfect list for a 15-item basket is below 1. The project's `metrics.ndcg` caps the
    ideal at min(|truth|, k); this one does not, on purpose, to be comparable with the paper.
    """
    truth_set = set(truth)
    dcg = sum(1 / math.log2(r + 2) for r, p in enumerate(pred[:k]) if p in truth_set)
    idcg = sum(1 / math.log2(i + 2) for i in range(len(truth_set)))
    return dcg / idcg


def phr_at_k(truth: Sequence[str], pred: Sequence[str], k: int) -> float:
    """Personal hit ratio: 1 if any of pred[:k] is in the target basket, else 0 (the reference's `get_HT`)."""
    truth_set = set(truth)
    return float(any(p in truth_set for p in pred[:k]))


def user_metrics(truth: Sequence[str], pred: Sequence[str], ks: Sequence[int] = KS) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k), ("phr", phr_at_k)):
        for k in ks:
            out[f"{name}@{k}"] = fn(truth, pred, k)
    return out


# --- predictors and evaluation -----------------------------------------------------------------------


class BasketPredictor(Protocol):
    """predict(histories, users, k) -> {user: up to k items, best first}.

    `histories` holds every user of the dataset (train, validation and test users, targets withheld),
    which is what the reference's methods read; `users` are the ones to answer for. A model that needs
    the fold (TIFUKNN's neighbours are the training users) or training targets is built per fold by the
    caller. Each `UserHistory` carries `target_date`: a served model reads its features as of that day.
    """

    def __call__(
        self, histories: Mapping[str, UserHistory], users: Sequence[str], k: int
    ) -> Mapping[str, Sequence[str]]: ...


@dataclass(frozen=True)
class FoldResult:
    seed: int
    split: str
    n_users: int
    metrics: dict[str, float]
    per_user: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)


def evaluate_fold(
    dataset: NBRDataset, fold: Fold, predictor: BasketPredictor, ks: Sequence[int] = KS, split: str = "test"
) -> FoldResult:
    """Score `predictor` on one fold's test (or "val") users: per-user metrics, then their mean.

    A user the predictor does not answer is scored on an empty list (zeros), not skipped. A list with a
    repeated item is rejected: the reference metrics would count the repeat twice, which no honest
    ranking needs, and the scores of valid lists are unchanged by the check.
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', not {split!r}")
    users = list(fold.test if split == "test" else fold.val)
    predictions = predictor(dataset.histories, users, max(ks))
    per_user: dict[str, dict[str, float]] = {}
    for user in users:
        pred = list(predictions.get(user, ()))[: max(ks)]
        if len(set(pred)) != len(pred):
            raise ValueError(f"prediction for user {user!r} repeats an item: {pred}")
        per_user[user] = user_metrics(dataset.targets[user], pred, ks)
    names = [f"{m}@{k}" for m in ("recall", "ndcg", "phr") for k in ks]
    means = {n: float(np.mean([m[n] for m in per_user.values()])) if per_user else 0.0 for n in names}
    return FoldResult(seed=fold.seed, split=split, n_users=len(users), metrics=means, per_user=per_user)


def summarise(results: Sequence[FoldResult]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std"}} over folds; std is the sample standard deviation (ddof=1) of fold means."""
    out: dict[str, dict[str, float]] = {}
    for name in results[0].metrics:
        values = np.array([r.metrics[name] for r in results])
        out[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    return out


# --- the frequency baselines (methods/g-p-gp-topfreq) ------------------------------------------------


def global_ranking(histories: Mapping[str, UserHistory]) -> list[str]:
    """Items by how often they occur in all users' history baskets (the reference's `{dataset}_pop.csv`
    counts exactly those rows), most frequent first; ties by item id so the order is reproducible."""
    counts = Counter(i for h in histories.values() for b in h.baskets for i in b)
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def personal_ranking(history: UserHistory) -> list[str]:
    """The user's history items by purchase count, most frequent first (`p_topfreq.py`).

    Ties keep the order in which the items first appear in the history (the reference sorts its
    insertion-ordered dict with a stable sort), baskets oldest first, items sorted inside a basket.
    """
    counts: dict[str, int] = {}
    for basket in history.baskets:
        for item in basket:
            counts[item] = counts.get(item, 0) + 1
    return sorted(counts, key=lambda i: -counts[i])  # stable: first appearance wins ties


def g_topfreq(histories: Mapping[str, UserHistory], users: Sequence[str], k: int) -> dict[str, list[str]]:
    """G-TopFreq: the k globally most frequent items, the same list for everyone."""
    top = global_ranking(histories)[:k]
    return {u: list(top) for u in users}


def p_topfreq(histories: Mapping[str, UserHistory], users: Sequence[str], k: int) -> dict[str, list[str]]:
    """P-TopFreq: the user's own k most frequent items (fewer if the history has fewer distinct items)."""
    return {u: personal_ranking(histories[u])[:k] for u in users}


def gp_topfreq(histories: Mapping[str, UserHistory], users: Sequence[str], k: int) -> dict[str, list[str]]:
    """GP-TopFreq: P-TopFreq, then filled up to k with the global ranking's items the user lacks."""
    top = global_ranking(histories)
    out: dict[str, list[str]] = {}
    for u in users:
        pred = personal_ranking(histories[u])[:k]
        if len(pred) < k:
            seen = set(pred)
            pred += [i for i in top[: k + len(pred)] if i not in seen][: k - len(pred)]
        out[u] = pred
    return out


BASELINES: dict[str, BasketPredictor] = {"G-TopFreq": g_topfreq, "P-TopFreq": p_topfreq, "GP-TopFreq": gp_topfreq}
