"""The served recommender on the Reality Check protocol: each list's features are as of its own day,
the fold's test users never train, and every test user gets a full list of the protocol's items."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprank.evaluation import nbr
from shoprank.evaluation.nbr_served import ServedNBR, ServedNBRConfig, rank_lists, targets_of, without_withheld


@pytest.fixture(scope="module")
def small(tafeng_events):
    """Every 8th Ta Feng customer, then the users whose target falls in the data's last six target days
    and whose last history basket is at most ten days before those."""
    from shoprank.data.sources import open_source
    from tests.conftest import TAFENG_ZIP

    events = tafeng_events[tafeng_events["user_id"].str[-3:].astype(int) % 8 == 0].reset_index(drop=True)
    whole = nbr.preprocess(events)
    last_days = sorted({h.target_date for h in whole.histories.values()})[-6:]
    recent = last_days[0] - pd.Timedelta(days=10)  # and a last history basket in the days before: few snapshots
    users = [u for u in whole.users if whole.histories[u].target_date in last_days
             and whole.histories[u].dates[-1] >= recent]
    dataset = nbr.NBRDataset(histories={u: whole.histories[u] for u in users},
                             targets={u: whole.targets[u] for u in users})
    return events, open_source("tafeng", TAFENG_ZIP).items(), dataset


@pytest.fixture(scope="module")
def served(small):
    events, items, dataset = small
    pipe = ServedNBR(events, items, dataset, ServedNBRConfig(train={"epochs": 1}), memory_limit="1GB",
                     log=lambda *_: None)
    pipe.prepare()
    return pipe


def test_each_list_is_the_users_withheld_basket_or_a_recent_history_basket(small):
    _, _, dataset = small
    targets = targets_of(dataset, extra=1)
    assert len(targets) == 2 * len(dataset.users)
    user = dataset.users[0]
    withheld, recent = [t for t in targets if t.user == user]
    history = dataset.histories[user]
    assert (withheld.day, withheld.basket, withheld.withheld) == (history.target_date, dataset.targets[user], True)
    assert (recent.day, recent.basket, recent.withheld) == (history.dates[-1], history.baskets[-1], False)


def test_undated_data_is_refused_with_the_user_named():
    dataset = nbr.dataset_from_merged({"7": [[1, 2], [2, 3], [3]]})
    with pytest.raises(ValueError, match="user '7' has no basket dates"):
        targets_of(dataset, extra=0)


def test_every_list_reads_only_the_events_before_its_day(small, served):
    """Against the raw events: the user's baskets and last purchase as of the list's day, never the
    day itself (the basket being predicted) nor anything after it."""
    events, _, dataset = small
    buys = events[events["event_type"] == "purchase"]
    lists = served.rows.drop_duplicates(["user_key", "event_timestamp"])
    assert len(lists) == 2 * len(dataset.users)
    for _, row in lists.iterrows():
        before = buys[(buys["user_id"] == row["user_key"]) & (buys["event_time"] < row["event_timestamp"])]
        assert row["user_n_baskets"] == before["event_time"].dt.normalize().nunique(), row["user_key"]
        assert row["user_days_since_last"] >= 1.0
    labelled = served.rows[served.rows["withheld"] & (served.rows["label"] == 1)]
    for user, items in labelled.groupby("user_key")["item_id"]:
        assert set(items) <= set(dataset.targets[user])
    assert served.rows["item_id"].isin(dataset.items()).all()
    assert 0 < served.candidate_recall <= 1


def test_the_fold_trains_without_its_test_users_and_answers_each_with_distinct_protocol_items(small, served):
    _, _, dataset = small
    fold = nbr.make_fold(dataset.users, seed=0)
    fit, val = served.fold_rows(fold)
    assert set(fit["user_key"]) <= set(fold.train) and set(val["user_key"]) <= set(fold.val)
    assert val["withheld"].all() and not fit["withheld"].all()
    predict, facts = served.fold_predictor(fold)
    assert facts["train_lists"] == fit.groupby(["user_key", "event_timestamp"]).ngroups
    result = nbr.evaluate_fold(dataset, fold, predict)
    answers = predict(dataset.histories, list(fold.test), 20)
    catalogue = dataset.items()
    for user in fold.test:
        assert len(answers[user]) == 20 == len(set(answers[user])) and set(answers[user]) <= catalogue
    assert result.n_users == len(fold.test) and result.metrics["recall@20"] > 0


def test_hiding_the_withheld_baskets_drops_exactly_the_target_days_purchases(small):
    events, _, dataset = small
    kept = without_withheld(events, dataset)
    dropped = events.loc[events.index.difference(kept.index)]
    assert len(dropped) > 0 and (dropped["event_type"] == "purchase").all()
    for user, day in dropped.groupby("user_id")["event_time"].first().items():
        assert day.normalize() == dataset.histories[user].target_date
    outsiders = ~events["user_id"].isin(set(dataset.users))
    assert kept["user_id"].isin(set(dataset.users)).sum() < (~outsiders).sum()
    assert (~kept["user_id"].isin(set(dataset.users))).sum() == outsiders.sum()


def test_short_lists_are_filled_from_the_days_popular_items_without_repeats():
    frame = pd.DataFrame({"user_key": ["u", "u", "v"], "item_id": ["a", "b", "c"]})
    out = rank_lists(frame, pd.Series([0.2, 0.9, 0.5]).to_numpy(), 3, {"u": ["b", "p", "q"], "w": ["p", "q"]})
    assert out == {"u": ["b", "a", "p"], "v": ["c"], "w": ["p", "q"]}
