"""Training examples: labels from future behaviour, candidates as negatives, Feast PIT features.

For each label cut-off T the example rows are (user, candidate item, T) and the label says whether
the user bought the item in [T, T + label window). Features are joined by Feast as of T, so they
only know the past. Cut-offs split temporally: the last one is the test set (the evaluate step's
held-out period), the one before it validation (early stopping), the rest training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoprank.features.derived import add_model_features


@dataclass(frozen=True)
class TrainingSetConfig:
    label_days: int = 7
    n_popular: int = 40  # popular items added as candidates for every user
    max_user_items: int = 100  # the user's own top items as candidates (repurchase)
    max_users_per_cutoff: int = 3000
    seed: int = 0
    n_cooc: int = 50  # items bought together with the user's history (exploration candidates)
    n_knn: int = 50  # items bought by the most similar shoppers (`user_knn_items`, exploration)
    n_sequence: int = 30  # the sequence model's next items, online (`SequenceSource`) and in the quality bench


def label_cutoffs(snapshots: list[pd.Timestamp], label_days: int, data_end: pd.Timestamp) -> list[pd.Timestamp]:
    """Snapshot times whose whole label window lies inside the data."""
    return [t for t in snapshots if t + pd.Timedelta(days=label_days) <= data_end]


def popular_at(item_stats: pd.DataFrame, at: pd.Timestamp, n: int) -> list[str]:
    """The n items with the most distinct buyers in the 30 days before `at` (ties: purchases, then id).

    The popularity baseline's definition. It was the 7-day purchase count before; one week is too
    noisy a window on grocery data (Ta Feng weeks range from 10k to 74k purchases: a data gap before
    Christmas, the Lunar New Year week), and on the validation cut-off (2001-01-04) the 30-day buyers'
    top 30 were bought by 1.77% of the period's buyers each on average vs 1.36% for the 7-day top 30.
    """
    snap = item_stats[item_stats["event_timestamp"] == at]
    ranked = snap.sort_values(["item_buyers_30d", "item_pop_30d", "item_id"], ascending=[False, False, True])
    return ranked["item_id"].head(n).tolist()


def merge_candidates(own_items: list[str], popular: list[str], max_user_items: int,
                     cooc_items: list[str] | None = None, n_cooc: int = 0,
                     extra: list[str] | None = None, knn_items: list[str] | None = None,
                     n_knn: int = 0) -> list[str]:
    """The candidate list for one user, offline and online alike.

    Own top items (repurchase), then the items bought together with the user's history
    (`user_cooc_items`), then those of the most similar shoppers (`user_knn_items`), then `extra`
    (the live session's items, the sequence model's next items), then popular.
    """
    cooc = list(cooc_items if cooc_items is not None else [])[:n_cooc]
    knn = list(knn_items if knn_items is not None else [])[:n_knn]
    return list(dict.fromkeys([*list(own_items)[:max_user_items], *cooc, *knn, *(extra or []), *popular]))


CANDIDATE_LISTS = ("user_top_items", "user_cooc_items", "user_knn_items")


def user_candidates(lists: Mapping | None, popular: list[str], config: TrainingSetConfig,
                    extra: list[str] | None = None) -> list[str]:
    """One user's candidates from their Feast list fields (`CANDIDATE_LISTS`): a snapshot row offline,
    the online lookup online, None for a user without features. One place that knows the sources."""
    def listed(name: str) -> list[str]:
        value = lists.get(name) if lists is not None else None
        return [] if value is None or isinstance(value, float) else list(value)

    return merge_candidates(listed("user_top_items"), popular, config.max_user_items, listed("user_cooc_items"),
                            config.n_cooc, extra, knn_items=listed("user_knn_items"), n_knn=config.n_knn)


def candidates_at(user_stats: pd.DataFrame, item_stats: pd.DataFrame, at: pd.Timestamp, users: list[str],
                  config: TrainingSetConfig) -> pd.DataFrame:
    """(user_key, item_id) pairs: each user's own top items plus the globally popular ones."""
    snap = user_stats[user_stats["event_timestamp"] == at].set_index("user_key")
    popular = popular_at(item_stats, at, config.n_popular)
    rows_user, rows_item = [], []
    lists = snap[[c for c in CANDIDATE_LISTS if c in snap.columns]].to_dict("index")
    for user in users:
        merged = user_candidates(lists.get(user), popular, config)
        rows_user.extend([user] * len(merged))
        rows_item.extend(merged)
    return pd.DataFrame({"user_key": rows_user, "item_id": rows_item})


def _label_window(buys: pd.DataFrame, at: pd.Timestamp, label_days: int) -> pd.DataFrame:
    return buys[(buys["event_time"] >= at) & (buys["event_time"] < at + pd.Timedelta(days=label_days))]


def sample_users(interactions: pd.DataFrame, known: dict[pd.Timestamp, set[str]], cutoffs: list[pd.Timestamp],
                 config: TrainingSetConfig, users_at: dict | None = None) -> dict[pd.Timestamp, list[str]]:
    """Per cut-off, the users whose examples are built: those who bought in its label window and
    have a feature row then (`known`), within `users_at`'s, at most `max_users_per_cutoff` drawn
    with the config's seed. Drawn before any user row is read, so a step reads only these users'
    candidate lists, however many users the shop has."""
    rng = np.random.default_rng(config.seed)
    buys = interactions[interactions["event_type"] == "purchase"]
    sampled = {}
    for at in cutoffs:
        users = sorted(set(_label_window(buys, at, config.label_days)["user_key"]) & known.get(at, set()))
        if users_at is not None and at in users_at:
            allowed = set(users_at[at])
            users = [u for u in users if u in allowed]
        if len(users) > config.max_users_per_cutoff:
            users = sorted(rng.choice(users, config.max_users_per_cutoff, replace=False).tolist())
        sampled[at] = users
    return sampled


def build_examples(interactions: pd.DataFrame, user_stats: pd.DataFrame, item_stats: pd.DataFrame,
                   cutoffs: list[pd.Timestamp], config: TrainingSetConfig,
                   splits: list[str] | None = None, users_at: dict | None = None,
                   sampled: dict[pd.Timestamp, list[str]] | None = None) -> pd.DataFrame:
    """Entity rows with labels (no features yet): user_key, item_id, event_timestamp, label, split.

    splits: the split name of each cut-off (default: last = test, the one before = validation, the
    rest train). users_at: {cut-off: allowed users} to keep user sets apart (e.g. a held-out
    validation group); default all users who bought in the label window and have features.
    sampled: the users of each cut-off, already drawn by `sample_users` (a step that reads only
    their user rows); default drawn here from `user_stats`.
    """
    buys = interactions[interactions["event_type"] == "purchase"]
    if sampled is None:
        known = {at: set(user_stats.loc[user_stats["event_timestamp"] == at, "user_key"]) for at in cutoffs}
        sampled = sample_users(interactions, known, cutoffs, config, users_at)
    frames = []
    for position, at in enumerate(cutoffs):
        window = _label_window(buys, at, config.label_days)
        cands = candidates_at(user_stats, item_stats, at, sampled[at], config)
        bought = set(zip(window["user_key"], window["item_id"], strict=True))
        cands["label"] = [int((u, i) in bought) for u, i in zip(cands["user_key"], cands["item_id"], strict=True)]
        cands["event_timestamp"] = at
        last = len(cutoffs) - 1
        if splits is not None:
            cands["split"] = splits[position]
        else:
            cands["split"] = "test" if position == last else ("validation" if position == last - 1 else "train")
        frames.append(cands)
    if not frames:
        raise ValueError("no label cut-off has a complete label window inside the data interval")
    return pd.concat(frames, ignore_index=True)


def ranker_impressions(shown: pd.DataFrame | None) -> pd.DataFrame | None:
    """The impressions the ranker may learn from: not those a merchandising rule placed (a pinned
    campaign item's clicks say the campaign worked, not that the item is relevant to the shopper).
    Positions stay as displayed. Crossings written before rules were logged have no such column."""
    if shown is None or "rule_placed" not in shown:
        return shown
    return shown[~shown["rule_placed"].fillna(False).astype(bool)].reset_index(drop=True)


def add_shown(examples: pd.DataFrame, shown: pd.DataFrame, interactions: pd.DataFrame, label_days: int,
              extra_splits: tuple[str, ...] = ("train",)) -> pd.DataFrame:
    """Logged impressions in the training set: every example records the best position its item was
    shown at to its user in the label window (`shown_position`, 0 = not shown), and in the
    `extra_splits` the items that were shown but are not candidates become examples too, labelled
    like every candidate (bought in the window or not): shown-but-not-taken negatives, and the
    positives the served lists found beyond the candidate sources. Validation and test keep their
    candidates, so the evaluation stays comparable with the baselines and the production model."""
    out = examples.assign(shown_position=0)
    if shown is None or shown.empty:
        return out
    buys = interactions[interactions["event_type"] == "purchase"]
    frames = [out]
    for at, group in out.groupby("event_timestamp", sort=True):
        end = at + pd.Timedelta(days=label_days)
        window = shown[(shown["event_time"] >= at) & (shown["event_time"] < end)
                       & shown["user_key"].isin(set(group["user_key"]))]
        if window.empty:
            continue
        best = window.groupby(["user_key", "item_id"], as_index=False)["position"].min()
        position = best.set_index(["user_key", "item_id"])["position"]
        keys = pd.MultiIndex.from_frame(group[["user_key", "item_id"]])
        out.loc[group.index, "shown_position"] = position.reindex(keys).fillna(0).astype("int64").to_numpy()
        split = group["split"].iloc[0]
        if split not in extra_splits:
            continue
        new = best[~pd.MultiIndex.from_frame(best[["user_key", "item_id"]]).isin(keys)]
        if new.empty:
            continue
        bought_in = buys[(buys["event_time"] >= at) & (buys["event_time"] < end)]
        bought = set(zip(bought_in["user_key"], bought_in["item_id"], strict=True))
        frames.append(pd.DataFrame({
            "user_key": new["user_key"].to_numpy(), "item_id": new["item_id"].to_numpy(),
            "label": [int((u, i) in bought) for u, i in zip(new["user_key"], new["item_id"], strict=True)],
            "event_timestamp": at, "split": split, "shown_position": new["position"].astype("int64").to_numpy()}))
    return pd.concat(frames, ignore_index=True)


REQUEST_GAP = pd.Timedelta(seconds=60)  # a user's impressions closer than this belong to one served list
SERVED_TEST = "served_test"  # split of the held-out period's served lists (scored by evaluate, never trained on)


def served_lists(shown: pd.DataFrame) -> pd.DataFrame:
    """The impressions with `shown_at`, the time their list was served: the public copy carries no
    request id (it would link a shopper's requests), so a user's impressions less than `REQUEST_GAP`
    apart form one list, and a list is as of its first impression. One row per (list, item), its best
    position."""
    ordered = shown.sort_values(["user_key", "event_time"]).reset_index(drop=True)
    new_user = ordered["user_key"].ne(ordered["user_key"].shift())
    gap = ordered["event_time"].diff().gt(REQUEST_GAP)
    list_no = (new_user | gap).cumsum()
    ordered["shown_at"] = ordered.groupby(list_no)["event_time"].transform("min")
    return ordered.groupby(["user_key", "shown_at", "item_id"], as_index=False)["position"].min()


def add_requests(examples: pd.DataFrame, shown: pd.DataFrame | None, interactions: pd.DataFrame,
                 label_days: int, train_until: pd.Timestamp,
                 held_out: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> pd.DataFrame:
    """Served lists as examples at the time they were served: (user, shown item, `shown_at`), labelled
    by a purchase of the item in [shown_at, shown_at + label window), with its position.

    The cut-off rows are as of midnight, when no shopper has a session; these rows are as of the
    moment the list was asked for, so the session inputs (features/session_inputs.py) and the Feast
    point-in-time join see what the online path saw. A list becomes `train` only when its whole label
    window closes before `train_until` (the first validation cut-off: nothing it learns from overlaps
    the periods it is judged on); a list of the `held_out` period (the nightly: from the validation
    cut-off, where training stops, to the data's end) whose window closes inside it becomes
    `served_test`, which the evaluate step scores as the served lists' own metric and for the
    off-policy estimate (`evaluation.off_policy`); the rest are left out."""
    if shown is None or shown.empty:
        return examples
    window = pd.Timedelta(days=label_days)
    lists = served_lists(shown)
    split = np.where(lists["shown_at"] + window <= train_until, "train", "")
    if held_out is not None:
        inside = (lists["shown_at"] >= held_out[0]) & (lists["shown_at"] + window <= held_out[1])
        split = np.where(inside, SERVED_TEST, split)
    lists = lists.assign(split=split)
    lists = lists[lists["split"] != ""]
    if lists.empty:
        return examples
    buys = interactions.loc[interactions["event_type"] == "purchase", ["user_key", "item_id", "event_time"]]
    paired = lists[["user_key", "item_id", "shown_at"]].reset_index().merge(buys, on=["user_key", "item_id"])
    hit = paired[(paired["event_time"] >= paired["shown_at"]) & (paired["event_time"] < paired["shown_at"] + window)]
    label = np.zeros(len(lists), dtype="int64")
    label[lists.index.get_indexer(hit["index"].unique())] = 1
    rows = pd.DataFrame({"user_key": lists["user_key"].to_numpy(), "item_id": lists["item_id"].to_numpy(),
                         "label": label, "event_timestamp": lists["shown_at"].array,
                         "split": lists["split"].to_numpy(),
                         "shown_position": lists["position"].astype("int64").to_numpy()})
    if "shown_position" not in examples:
        examples = examples.assign(shown_position=0)
    out = pd.concat([examples, rows], ignore_index=True) if len(examples) else rows.reindex(
        columns=list(dict.fromkeys([*examples.columns, *rows.columns])))
    # one timestamp type: the cut-off rows' UTC (as read from parquet) and the lists' UTC are different
    # time-zone objects, and an empty part's column is `object`; either way concat gives objects, which
    # the point-in-time join cannot match
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


def truth_sets(interactions: pd.DataFrame, at: pd.Timestamp, label_days: int) -> dict[str, set[str]]:
    """Distinct items each user bought in [at, at + label window): what evaluation counts as hits."""
    buys = interactions[(interactions["event_type"] == "purchase") & (interactions["event_time"] >= at)
                        & (interactions["event_time"] < at + pd.Timedelta(days=label_days))]
    return buys.groupby("user_key")["item_id"].agg(set).to_dict()


def with_features(examples: pd.DataFrame, joined: pd.DataFrame, horizon_days: float) -> pd.DataFrame:
    """Attach the point-in-time joined features, the derived user x item features and the calendar
    context of each example's label window (`horizon_days` = the label window's length)."""
    keys = ["user_key", "item_id", "event_timestamp"]
    merged = examples.merge(joined.drop(columns=[c for c in ("label", "split") if c in joined]), on=keys,
                            how="left")
    return add_model_features(merged, horizon_days)
