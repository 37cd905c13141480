"""Evaluation protocols: how events become (what a model may learn from, what it must predict).

Two protocols, selectable by name (`make_split`), both returning the same `Split`:

* ``temporal`` (the production-like default): everything before the cut-off T is training, the next
  period is the test. This is how the nightly pipeline is used (yesterday's data predicts
  tomorrow's purchases), so it is the protocol that decides blessings. Test users are those with at
  least one interaction before T and one in the test period (a model cannot be asked about someone
  it has never seen; cold-start is a separate slice). Truth is the set of distinct items the user
  bought in the test period; repurchases count, so `exclude_seen` is False.

* ``leave_last_out`` (the protocol of sequential-recommendation papers, for comparison with them):
  per user, the last interaction is the test target, the one before it validation, the rest
  training; the target is ranked against all items with the user's history excluded.

  What an "interaction" is on a purchase log with day-resolution timestamps and heavy repurchase
  (Ta Feng) needs a definition, because excluding the history would make any repeated item
  unrankable. Here the interaction sequence of a user is their *distinct items in order of first
  purchase*: each item enters the sequence once, when the user first bought it. The target is thus
  the last item new to the user, never in their history, and excluding the history is consistent.
  Items first bought at the same timestamp (one basket, or one day in Ta Feng) are ordered by a
  fixed hash of (user, item), then item id: deterministic whatever the row order of the input, and
  unrelated to the item-id numbering (sorting by id would bias targets towards some manufacturers'
  code ranges). Users with fewer than 3 distinct items are not test users; all their events stay in
  training. For a test user, training keeps the events up to the target's timestamp minus every
  event of the target item (so no later repurchase of an older item leaks future behaviour); the
  validation split does the same at the validation item's timestamp and also drops the target item.
  Other users' events are not cut at any time: that global-timeline leak is inherent to
  leave-last-out and the reason temporal is the default.

Both protocols attach a `validation` split with the same shape for early stopping and model
selection (temporal: the period of the same length just before T; leave-last-out: the
second-to-last item), so the test period is touched once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PROTOCOLS = ("temporal", "leave_last_out")
TAFENG_CUTOFF = pd.Timestamp("2001-02-01", tz="UTC")


@dataclass
class Split:
    """One train/test split, the same shape whatever the protocol.

    train: canonical events a model may learn from when predicting `truth` (interaction types only,
        see `train_event_types`); never contains a test-period event or a test target.
    truth: {test user: the items to predict}; temporal: distinct items bought in the test period,
        leave-last-out: a one-item list (the target).
    test_users: sorted; exactly the keys of `truth`.
    exclude: {test user: items that must not be recommended} or None. Leave-last-out: the user's
        history; temporal: None (grocery repurchase is the main signal, it must be rankable).
    n_items: catalogue size, the denominator of coverage: distinct items of the interaction types in
        the whole event frame given to the protocol (items a model could have learned or be asked).
    validation: a split of `train` alone, same protocol, for early stopping; None for a split that
        is itself a validation split.
    """

    name: str
    train: pd.DataFrame
    truth: dict[str, list[str]]
    test_users: list[str]
    cutoff: pd.Timestamp | None
    exclude_seen: bool
    n_items: int
    exclude: dict[str, set[str]] | None = None
    test_end: pd.Timestamp | None = None
    validation: Split | None = field(default=None, repr=False)

    def describe(self) -> dict[str, object]:
        """Counts for logs and reports."""
        return {
            "protocol": self.name,
            "cutoff": None if self.cutoff is None else str(self.cutoff),
            "test_end": None if self.test_end is None else str(self.test_end),
            "train_events": len(self.train),
            "train_users": int(self.train["user_id"].nunique()),
            "test_users": len(self.test_users),
            "truth_items_mean": float(np.mean([len(v) for v in self.truth.values()])) if self.truth else 0.0,
            "n_items": self.n_items,
        }


def _interactions(events: pd.DataFrame, event_types: Sequence[str]) -> pd.DataFrame:
    """Item-bearing events of the given types (search events carry no item)."""
    mask = events["event_type"].isin(list(event_types)) & events["item_id"].notna()
    return events.loc[mask]


def _as_utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _truth_dict(frame: pd.DataFrame) -> dict[str, list[str]]:
    """{user: sorted distinct items}; sorted so the truth is reproducible whatever the row order."""
    pairs = frame[["user_id", "item_id"]].drop_duplicates().sort_values(["user_id", "item_id"])
    users = pairs["user_id"].to_numpy()
    items = pairs["item_id"].to_numpy()
    if len(users) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {str(users[s]): items[s:e].tolist() for s, e in zip(starts, ends, strict=True)}


def temporal_split(
    events: pd.DataFrame,
    cutoff: pd.Timestamp | str = TAFENG_CUTOFF,
    test_end: pd.Timestamp | str | None = None,
    event_types: Sequence[str] = ("purchase",),
    train_event_types: Sequence[str] | None = None,
    validation_days: float | None = None,
    with_validation: bool = True,
) -> Split:
    """Train on events before `cutoff`, test on [cutoff, test_end) (test_end None: to the data's end).

    event_types: what counts as an interaction for the test-user rule and the truth (purchases).
    train_event_types: what the train frame keeps (default: `event_types`); e.g. add "view" to let a
        model learn from browsing while still being judged on purchases.
    validation_days: length of the validation period just before `cutoff`; None: the test period's
        length, counted in whole days with the last day included (Ta Feng February: 28 days).
    """
    cutoff = _as_utc(cutoff)
    end = None if test_end is None else _as_utc(test_end)
    interactions = _interactions(events, event_types)
    n_items = int(interactions["item_id"].nunique())
    times = interactions["event_time"]
    before = interactions.loc[times < cutoff]
    in_test = interactions.loc[(times >= cutoff) & ((times < end) if end is not None else True)]
    test_users = sorted(set(before["user_id"].unique()) & set(in_test["user_id"].unique()))
    truth = _truth_dict(in_test.loc[in_test["user_id"].isin(test_users)])

    train_types = list(train_event_types) if train_event_types is not None else list(event_types)
    train_all = _interactions(events, train_types)
    train = train_all.loc[train_all["event_time"] < cutoff].reset_index(drop=True)

    validation = None
    if with_validation and len(in_test):
        if validation_days is None:
            span_end = end if end is not None else in_test["event_time"].max().floor("D") + pd.Timedelta(days=1)
            validation_days = math.ceil((span_end - cutoff) / pd.Timedelta(days=1))
        v_cut = cutoff - pd.Timedelta(days=validation_days)
        validation = temporal_split(train, v_cut, cutoff, event_types, train_event_types, with_validation=False)
        validation.n_items = n_items
    return Split(name="temporal", train=train, truth=truth, test_users=test_users, cutoff=cutoff,
                 exclude_seen=False, n_items=n_items, exclude=None, test_end=end, validation=validation)


def new_items_split(events: pd.DataFrame, cutoff: pd.Timestamp | str, test_end: pd.Timestamp | str | None = None,
                    event_types: Sequence[str] = ("purchase",)) -> Split:
    """The temporal split judged on the items each shopper buys for the first time: what a candidate
    source that looks past the shopper's own items (the sequence model) is for. The truth keeps only
    items not in the user's training history, which is excluded from the ranking, as in leave-last-out;
    users who bought nothing new in the test period are not test users."""
    split = temporal_split(events, cutoff, test_end, event_types, with_validation=False)
    history = {str(u): set(items) for u, items in split.train.groupby("user_id", sort=True)["item_id"]}
    truth = {u: [i for i in items if i not in history.get(u, set())] for u, items in split.truth.items()}
    truth = {u: items for u, items in truth.items() if items}
    users = sorted(truth)
    return Split(name="new_items", train=split.train, truth=truth, test_users=users, cutoff=split.cutoff,
                 exclude_seen=True, n_items=split.n_items, exclude={u: history.get(u, set()) for u in users},
                 test_end=split.test_end)


def interaction_sequences(events: pd.DataFrame, event_types: Sequence[str] = ("purchase",)) -> pd.DataFrame:
    """Each user's distinct items in first-interaction order: user_id, item_id, first_time, position.

    Ties on first_time are broken by a fixed hash of (user, item), then item id (see module doc).
    """
    inter = _interactions(events, event_types)
    firsts = inter.groupby(["user_id", "item_id"], sort=False, observed=True)["event_time"].min().reset_index()
    firsts = firsts.rename(columns={"event_time": "first_time"})
    # hash_pandas_object uses a fixed key: the same on every machine and run.
    firsts["_tie"] = pd.util.hash_pandas_object(firsts[["user_id", "item_id"]], index=False).to_numpy()
    firsts = firsts.sort_values(["user_id", "first_time", "_tie", "item_id"], kind="mergesort")
    firsts["position"] = firsts.groupby("user_id", sort=False).cumcount()
    return firsts.drop(columns="_tie").reset_index(drop=True)


def _loo_level(inter: pd.DataFrame, seq: pd.DataFrame, from_end: int, drop_items: pd.DataFrame,
               n_items: int, name: str) -> Split:
    """The split whose target is the `from_end`-th last sequence item (1 = last) of eligible users.

    drop_items: (user_id, item_id) pairs whose events never enter training (target, and for
    validation also the test target).
    """
    length = seq.groupby("user_id", sort=False)["position"].transform("size")
    eligible = length >= 3
    targets = seq.loc[eligible & (seq["position"] == length - from_end), ["user_id", "item_id", "first_time"]]
    target_time = targets.set_index("user_id")["first_time"]
    # Training: events of eligible users up to the target time, minus the dropped items; all events
    # of everyone else.
    limit = inter["user_id"].map(target_time)
    keep = limit.isna() | (inter["event_time"] <= limit)
    drop_keys = pd.MultiIndex.from_frame(drop_items[["user_id", "item_id"]])
    dropped = pd.MultiIndex.from_frame(inter[["user_id", "item_id"]]).isin(drop_keys)
    train = inter.loc[keep.to_numpy() & ~dropped].reset_index(drop=True)
    truth = {str(u): [str(i)] for u, i in zip(targets["user_id"], targets["item_id"], strict=True)}
    test_users = sorted(truth)
    history = seq.loc[eligible & (seq["position"] < length - from_end), ["user_id", "item_id"]]
    exclude = {str(u): set(items) for u, items in history.groupby("user_id", sort=True)["item_id"]}
    exclude = {u: exclude.get(u, set()) for u in test_users}
    return Split(name=name, train=train, truth=truth, test_users=test_users, cutoff=None, exclude_seen=True,
                 n_items=n_items, exclude=exclude)


def leave_last_out_split(events: pd.DataFrame, event_types: Sequence[str] = ("purchase",)) -> Split:
    """Last distinct new item per user = test target, the one before = validation (see module doc).

    `split.exclude[u]` is the user's history (all their sequence items before the target); rank the
    target against every other catalogue item. `split.validation` is the same for the second-to-last
    item, its train frame without both targets.
    """
    inter = _interactions(events, event_types)
    n_items = int(inter["item_id"].nunique())
    seq = interaction_sequences(inter, event_types)
    length = seq.groupby("user_id", sort=False)["position"].transform("size")
    last = seq.loc[(length >= 3) & (seq["position"] == length - 1), ["user_id", "item_id"]]
    second = seq.loc[(length >= 3) & (seq["position"] == length - 2), ["user_id", "item_id"]]
    split = _loo_level(inter, seq, 1, last, n_items, "leave_last_out")
    split.validation = _loo_level(inter, seq, 2, pd.concat([last, second]), n_items, "leave_last_out/validation")
    return split


def make_split(protocol: str, events: pd.DataFrame, **options: object) -> Split:
    """Pick a protocol by name (configuration, CLI, bench): 'temporal' or 'leave_last_out'."""
    if protocol == "temporal":
        return temporal_split(events, **options)  # type: ignore[arg-type]
    if protocol == "leave_last_out":
        return leave_last_out_split(events, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")
