"""The served recommender on the Reality Check protocol (`evaluation/nbr.py`): its candidates, features
and ranker, each user's features point-in-time at the day of the basket it predicts.

Why this is its own harness and not a `BasketPredictor` over the histories alone: the served model
reads the feature store, whose rows at time t come from every shopper's events before t. Each user's
target falls on its own day (about 120 days on Ta Feng), so one snapshot per day is taken, holding only
the rows of the users whose basket falls on it (`engine.frames.focused_snapshots`, the same rows as
the whole table). What the model sees differs from the frequency baselines and TIFUKNN in two ways,
both stated with the figures: it reads the raw events before the day (all shoppers, items the protocol
drops included, views and carts where a shop has them), and never a training user's later baskets,
which TIFUKNN's neighbours include.

The ranker is trained per fold, on the fold's training users: their withheld basket and, for more
lists, their last `extra_targets` history baskets, each with the features of its own day. The fold's
validation users early-stop it; its test users are scored. Candidates and rankings keep to the
protocol's items (those a target can hold), filled from the day's popular items.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shoprank.evaluation import nbr
from shoprank.evaluation.quality import interactions_of
from shoprank.evaluation.ranking import rank_by_score


@dataclass(frozen=True)
class ServedNBRConfig:
    n_popular: int = 30
    max_user_items: int = 100
    n_cooc: int = 50
    n_knn: int = 50
    extra_targets: int = 1  # a training user's last history baskets that are also training lists
    horizon_days: int = 1  # the calendar features' window: the next basket is one day
    # drop every user's withheld basket from the events the features read: no feature then sees
    # another user's target either (stricter than the protocol, whose methods read the training
    # users' last baskets)
    hide_withheld: bool = False
    train: Mapping[str, object] = field(default_factory=dict)  # TrainConfig fields over the production defaults


@dataclass(frozen=True)
class Target:
    """One list to build: `user`'s basket on `day` (features as of that day's start)."""

    user: str
    day: pd.Timestamp
    basket: nbr.Basket
    withheld: bool  # the protocol's target (True) or one of the user's history baskets (False)


def targets_of(dataset: nbr.NBRDataset, extra: int) -> list[Target]:
    """Each user's withheld basket, and their last `extra` history baskets (the training-only lists)."""
    out: list[Target] = []
    for user in dataset.users:
        history = dataset.histories[user]
        if history.target_date is None or history.dates is None:
            raise ValueError(f"user {user!r} has no basket dates: the served model reads features as of the "
                             "target day, so it needs dated data (nbr.preprocess, not dataset_from_merged)")
        out.append(Target(user, history.target_date, dataset.targets[user], True))
        for basket, day in list(zip(history.baskets, history.dates, strict=True))[::-1][:extra]:
            out.append(Target(user, day, basket, False))
    return out


def without_withheld(events: pd.DataFrame, dataset: nbr.NBRDataset) -> pd.DataFrame:
    """The events less every dataset user's purchases on their target day."""
    days = pd.Series({u: h.target_date for u, h in dataset.histories.items()})
    target_day = events["user_id"].astype(str).map(days)
    hidden = (events["event_type"] == "purchase") & (events["event_time"].dt.normalize() == target_day)
    return events[~hidden.fillna(False).to_numpy(dtype=bool)]


class ServedNBR:
    """Snapshots and candidate lists for every target once; a ranker per fold on them."""

    def __init__(self, events: pd.DataFrame, items: pd.DataFrame, dataset: nbr.NBRDataset,
                 config: ServedNBRConfig | None = None, memory_limit: str = "6GB", log=print) -> None:
        self.events, self.items, self.dataset = events, items, dataset
        self.config = config or ServedNBRConfig()
        self.memory_limit, self.log = memory_limit, log
        self.catalogue = dataset.items()
        self.timings: dict[str, float] = {}

    def prepare(self) -> None:
        """Every target's candidates with their features and labels (`self.rows`)."""
        from shoprank.features.derived import add_model_features
        from shoprank.features.engine.frames import focused_snapshots
        from shoprank.features.training_set import CANDIDATE_LISTS, TrainingSetConfig, popular_at, user_candidates

        cfg = self.config
        targets = targets_of(self.dataset, cfg.extra_targets)
        users_at: dict[pd.Timestamp, set[str]] = {}
        for t in targets:
            users_at.setdefault(t.day, set()).add(t.user)
        started = time.perf_counter()
        events = without_withheld(self.events, self.dataset) if cfg.hide_withheld else self.events
        user_stats, item_stats = focused_snapshots(interactions_of(events), self.items, users_at,
                                                   memory_limit=self.memory_limit)
        self.timings["snapshots_s"] = time.perf_counter() - started
        self.log(f"  {len(users_at)} daily snapshots for {len(targets):,} lists in {self.timings['snapshots_s']:.0f} s")

        started = time.perf_counter()
        ts_config = TrainingSetConfig(n_popular=cfg.n_popular, max_user_items=cfg.max_user_items,
                                      n_cooc=cfg.n_cooc, n_knn=cfg.n_knn)
        lists = user_stats.set_index(["user_key", "event_timestamp"])[list(CANDIDATE_LISTS)].to_dict("index")
        self.popular = {day: [i for i in popular_at(item_stats, day, 500) if i in self.catalogue] for day in users_at}
        users, days, item_ids, labels, withheld = [], [], [], [], []
        for t in targets:
            cands = [i for i in user_candidates(lists.get((t.user, t.day)), self.popular[t.day][:cfg.n_popular],
                                                ts_config) if i in self.catalogue]
            wanted = set(t.basket)
            users.extend([t.user] * len(cands))
            days.extend([t.day] * len(cands))
            item_ids.extend(cands)
            labels.extend(int(i in wanted) for i in cands)
            withheld.extend([t.withheld] * len(cands))
        rows = pd.DataFrame({"user_key": users, "item_id": item_ids, "event_timestamp": days,
                             "label": labels, "withheld": withheld})
        rows = rows.merge(user_stats, on=["user_key", "event_timestamp"], how="left")
        rows = rows.merge(item_stats, on=["item_id", "event_timestamp"], how="left")
        self.rows = add_model_features(rows, cfg.horizon_days)
        self.timings["features_s"] = time.perf_counter() - started
        found = self.rows[self.rows["withheld"]].groupby("user_key")["label"].sum()
        self.candidate_recall = float(np.mean([found.get(u, 0) / len(self.dataset.targets[u])
                                               for u in self.dataset.users]))
        self.log(f"  {len(self.rows):,} candidate rows ({len(self.rows) / len(targets):.0f} per list), "
                 f"candidate recall of the withheld baskets {self.candidate_recall:.3f}, "
                 f"in {self.timings['features_s']:.0f} s")

    def fold_rows(self, fold: nbr.Fold) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(training rows: every list of the training users; validation rows: the validation users'
        withheld baskets). No test user's row is in either."""
        fit = self.rows[self.rows["user_key"].isin(set(fold.train))]
        val = self.rows[self.rows["user_key"].isin(set(fold.val)) & self.rows["withheld"]]
        return fit, val

    def fold_predictor(self, fold: nbr.Fold, seed: int = 0) -> tuple[nbr.BasketPredictor, dict]:
        """A ranker trained on the fold's training users' lists and stopped on its validation users';
        the predictor ranks any user's withheld-basket candidates."""
        from shoprank.features.derived import model_inputs
        from shoprank.models.train import TrainConfig, train_ranker

        fit, val = self.fold_rows(fold)
        config = TrainConfig(**{**dict(self.config.train), "seed": seed})
        started = time.perf_counter()
        ranker = train_ranker(fit, val, config, verbose=0)
        facts = {"train_rows": len(fit), "train_lists": int(fit.groupby(["user_key", "event_timestamp"]).ngroups),
                 "epochs": len(ranker.history["loss"]), "train_s": round(time.perf_counter() - started, 1),
                 "examples_per_s": ranker.examples_per_second}
        withheld = self.rows[self.rows["withheld"]]

        def predict(histories: Mapping[str, nbr.UserHistory], users: Sequence[str], k: int) -> dict[str, list[str]]:
            frame = withheld[withheld["user_key"].isin(set(users))]
            scores = ranker.model.predict(model_inputs(frame), batch_size=65536, verbose=0).reshape(-1)
            return rank_lists(frame, scores, k, {u: self.popular[histories[u].target_date] for u in users})

        return predict, facts


def rank_lists(frame: pd.DataFrame, scores: np.ndarray, k: int,
               fill: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each user's k best candidates by score (ties by item id), filled from `fill[user]` when the
    candidates are fewer than k; a user without candidates gets `fill` alone."""
    out = {str(u): items for u, items in rank_by_score(frame, scores, k).items()}
    for user, more in fill.items():
        lst = out.setdefault(user, [])
        if len(lst) < k:
            seen = set(lst)
            lst.extend([i for i in more if i not in seen][: k - len(lst)])
    return out
