"""Baseline exactness on data small enough to rank by hand, plus cold start and exclusions."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprank.evaluation.baselines import (
    ItemCooccurrence,
    PersonalThenPopular,
    PersonalTopFrequency,
    PopularityRecommender,
    Recommender,
    default_baselines,
    evaluate_recommender,
)
from shoprank.evaluation.protocols import temporal_split


@pytest.fixture
def popularity_events(events_factory) -> pd.DataFrame:
    return events_factory([
        ("2000-12-01", "p", "old"), ("2000-12-01", "q", "old"), ("2000-12-01", "r", "old"),
        ("2001-01-01", "t", "edge"),  # exactly 30 days before the last event: outside the window
        ("2001-01-10", "p", "x"), ("2001-01-11", "q", "x"), ("2001-01-31", "s", "x"),
        ("2001-01-12", "r", "y"), ("2001-01-13", "r", "y"),
        ("2001-01-14", "s", "z"), ("2001-01-15", "s", "w"),
    ])


def test_popularity_counts_distinct_buyers_in_the_window(popularity_events: pd.DataFrame) -> None:
    model = PopularityRecommender(window_days=30).fit(popularity_events)
    # x: 3 buyers; y: 1 buyer, 2 events; w and z: 1 buyer, 1 event (id order); then out-of-window
    # items by all-time buyers: old (3), edge (1).
    assert model.ranked_ == ["x", "y", "w", "z", "old", "edge"]
    assert model.recommend(["anyone", "p"], 3) == {"anyone": ["x", "y", "w"], "p": ["x", "y", "w"]}


def test_popularity_all_time_and_explicit_cutoff(popularity_events: pd.DataFrame) -> None:
    assert PopularityRecommender(window_days=None).fit(popularity_events).ranked_ == [
        "old", "x", "y", "edge", "w", "z"]  # old and x tie on 3 buyers and 3 events: item id
    model = PopularityRecommender(window_days=3, as_of="2001-01-14").fit(popularity_events)
    assert model.ranked_ == ["y", "x", "old", "edge", "w", "z"]  # window [Jan 11, Jan 14)


def test_popularity_exclude(popularity_events: pd.DataFrame) -> None:
    model = PopularityRecommender().fit(popularity_events)
    assert model.recommend(["p", "q"], 2, exclude={"p": {"x", "w"}}) == {"p": ["y", "z"], "q": ["x", "y"]}


@pytest.fixture
def personal_events(events_factory) -> pd.DataFrame:
    return events_factory([
        ("2001-01-01", "r", "old"), ("2001-01-05", "r", "y"), ("2001-01-06", "r", "y"),
        ("2001-01-20", "r", "k"), ("2001-01-20", "r", "j"),
        ("2001-01-21", "s", "pop"), ("2001-01-22", "t", "pop"), ("2001-01-22", "t", "y"),
    ])


def test_personal_top_frequency_order_and_cold_start(personal_events: pd.DataFrame) -> None:
    model = PersonalTopFrequency().fit(personal_events)
    # y bought twice; j, k, old once: the more recent first (j and k same day: item id).
    assert model.recommend(["r"], 10) == {"r": ["y", "j", "k", "old"]}
    assert model.recommend(["r", "s", "new"], 2) == {"r": ["y", "j"], "s": ["pop"], "new": ["y", "pop"]}
    assert model.recommend(["r"], 2, exclude={"r": {"y"}}) == {"r": ["j", "k"]}


def test_personal_then_popular_fills_without_duplicates(personal_events: pd.DataFrame) -> None:
    model = PersonalThenPopular().fit(personal_events)
    assert model.popular.ranked_ == ["y", "pop", "j", "k", "old"]
    recs = model.recommend(["r", "s", "new"], 3)
    assert recs == {"r": ["y", "j", "k"], "s": ["pop", "y", "j"], "new": ["y", "pop", "j"]}
    assert model.recommend(["r"], 10)["r"] == ["y", "j", "k", "old", "pop"]  # the whole catalogue
    assert model.recommend(["r"], 3, exclude={"r": {"y", "j"}}) == {"r": ["k", "old", "pop"]}


@pytest.fixture
def baskets(events_factory) -> pd.DataFrame:
    return events_factory([
        ("2001-01-01", "u1", "a"), ("2001-01-01", "u1", "b"), ("2001-01-01", "u1", "c"),
        ("2001-01-01", "u2", "a"), ("2001-01-01", "u2", "b"),
        ("2001-01-01", "u3", "a"), ("2001-01-01", "u3", "d"),
        ("2001-01-02", "u1", "e"),  # alone in its basket: no basket pair, but in u1's history
    ])


def test_cooccurrence_conditional_scores_by_hand(baskets: pd.DataFrame) -> None:
    model = ItemCooccurrence().fit(baskets)
    # sim(i->j) = C[i,j] / n_i. u3 = {a, d}: a <- d 1; b <- a 2/3; c, d <- a 1/3 (tie: popularity/id).
    # e scores 0 and comes last in popularity order.
    assert model.recommend(["u3"], 5) == {"u3": ["a", "b", "c", "d", "e"]}
    # u2 = {a, b}: a <- b 1; c <- a 1/3 + b 1/2 = 5/6; b <- a 2/3; d <- a 1/3.
    assert model.recommend(["u2"], 5) == {"u2": ["a", "c", "b", "d", "e"]}
    assert model.recommend(["u2"], 2, exclude={"u2": {"a", "c"}}) == {"u2": ["b", "d"]}
    assert model.recommend(["cold"], 3) == {"cold": ["a", "b", "c"]}  # popularity order


def test_cooccurrence_user_context_and_cosine(baskets: pd.DataFrame) -> None:
    by_user = ItemCooccurrence(context="user").fit(baskets)
    # e now co-occurs with a, b, c through u1: e <- a 1/3 + b 1/2 = 5/6, tied with c: c is first by id.
    assert by_user.recommend(["u2"], 5) == {"u2": ["a", "c", "e", "b", "d"]}
    cosine = ItemCooccurrence(normalisation="cosine").fit(baskets)
    # u2: c <- 1/sqrt(3) + 1/sqrt(2); a and b <- 2/sqrt(6) (tie: popularity); d <- 1/sqrt(3).
    assert cosine.recommend(["u2"], 4) == {"u2": ["c", "a", "b", "d"]}


def test_cooccurrence_neighbour_pruning_keeps_the_best_with_popular_ties(baskets: pd.DataFrame) -> None:
    model = ItemCooccurrence(neighbours=1).fit(baskets)
    sim = model.sim_.tocsr()
    code = {item: i for i, item in enumerate(model.items_)}
    row_c = sim.getrow(code["c"])
    assert row_c.nnz == 1 and row_c.indices[0] == code["a"]  # c -> a and c -> b tie at 1: a is more popular
    assert (sim.getnnz(axis=1) <= 1).all()


def test_all_baselines_follow_the_protocol_and_give_k_unique_items(baskets: pd.DataFrame) -> None:
    for model in default_baselines():
        assert isinstance(model, Recommender)
        recs = model.fit(baskets).recommend(["u1", "u2", "cold"], 3, exclude={"u2": {"a"}})
        for user, items in recs.items():
            assert len(items) == len(set(items)) <= 3
            assert user != "u2" or "a" not in items
        assert len(recs["cold"]) == 3


def test_evaluate_recommender_runs_the_shared_path(events_factory) -> None:
    events = events_factory([
        ("2001-01-05", "u", "a"), ("2001-01-06", "u", "a"), ("2001-01-07", "v", "b"),
        ("2001-02-02", "u", "a"), ("2001-02-03", "v", "a"),
    ])
    split = temporal_split(events, "2001-02-01")
    result = evaluate_recommender(PersonalTopFrequency(), split, ks=(1,), per_user=True)
    assert result["metrics"]["recall@1"] == pytest.approx(0.5)  # u repurchases a; v's b is a miss
    assert list(result["per_user"]["user_id"]) == ["u", "v"]


def test_baselines_at_fits_on_pseudonymised_purchases_before_the_cutoff(events_factory) -> None:
    """The evaluate step's view: user_key, no session, views mixed in, events after T ignored."""
    from shoprank.evaluation.baselines import baselines_at

    events = events_factory([
        ("2001-01-02", "a", "milk"), ("2001-01-03", "a", "milk"), ("2001-01-03", "a", "bread"),
        ("2001-01-04", "b", "eggs"), ("2001-01-05", "c", "eggs"), ("2001-01-05", "c", "tea"),
        ("2001-02-02", "d", "caviar"), ("2001-02-03", "e", "caviar"),  # after T: must not count
    ])
    views = events_factory([("2001-01-06", "x", "tv"), ("2001-01-06", "y", "tv"), ("2001-01-06", "z", "tv")],
                           event_type="view")
    inter = pd.concat([events, views]).rename(columns={"user_id": "user_key"})
    inter = inter[["user_key", "item_id", "event_type", "event_time", "price", "quantity"]]
    truth = {"a": ["milk", "caviar"], "b": ["tea"]}
    result = baselines_at(inter, pd.Timestamp("2001-02-01"), truth, ks=(1, 2), n_items=6)
    assert set(result) == {m.name for m in default_baselines()}
    # popularity: eggs (2 buyers), then milk (1 buyer, 2 events). Counting views would put tv first,
    # counting February would put caviar (2 buyers, id before eggs) first: both make hr@1 0.5.
    assert result["popularity"]["hr@1"] == 0.0
    assert result["popularity"]["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    # a's own most bought item is milk; b's own item eggs, then the popular fill
    assert result["personal_then_popular"]["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    # b has bought eggs with c who also bought tea: co-occurrence finds it in the top 2
    assert result["item_cooccurrence"]["recall@2"] >= 0.5
