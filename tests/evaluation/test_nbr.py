"""The NBR "Reality Check" protocol and TIFUKNN on data small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation import nbr
from shoprank.evaluation.nbr import Fold, NBRDataset, UserHistory
from shoprank.evaluation.tifuknn import TIFUKNN, TIFUKNNParams, basket_weights, group_boundaries, user_vectors
from tests.evaluation.conftest import make_events

DAY = pd.Timestamp("2001-01-01", tz="UTC")


def day(n: int) -> str:
    return (DAY + pd.Timedelta(days=n)).strftime("%Y-%m-%d")


def filter_events() -> pd.DataFrame:
    """Six customers; which ones survive and which items stay is worked out in `test_filters`.

    A: d1 {x, r}  d2 {y, z}  d3 {x}  target d4 {y, r, t, w}
    B: d1 {x, y, w}  d2 {r}  target d3 {x}
    C: d1 {x, w}  d2 {y}  target d3 {r}
    D: d1 {x}  d2 {y}                      (2 days: out)
    E: 51 days of {z}                      (51 days: out, so its z never counts)
    F: 50 days of {x}                      (50 days: in)
    """
    rows = [
        (day(1), "A", "x"), (day(1), "A", "r"), (day(2), "A", "y"), (day(2), "A", "z"), (day(3), "A", "x"),
        (day(4), "A", "y"), (day(4), "A", "r"), (day(4), "A", "t"), (day(4), "A", "w"),
        (day(1), "A", "x"),  # the same item twice on a day is one basket entry
        (day(1), "B", "x"), (day(1), "B", "y"), (day(1), "B", "w"), (day(2), "B", "r"), (day(3), "B", "x"),
        (day(1), "C", "x"), (day(1), "C", "w"), (day(2), "C", "y"), (day(3), "C", "r"),
        (day(1), "D", "x"), (day(2), "D", "y"),
    ]
    rows += [(day(n), "E", "z") for n in range(51)]
    rows += [(day(n), "F", "x") for n in range(50)]
    views = make_events([(day(9), "A", "v"), (day(10), "A", "x")], event_type="view")
    events = pd.concat([make_events(rows), views], ignore_index=True)
    return events.sample(frac=1.0, random_state=3).reset_index(drop=True)  # row order must not matter


def test_filters_and_last_basket_target() -> None:
    data = nbr.preprocess(filter_events())
    c = data.counts
    assert c is not None
    # history counts over A, B, C, F only: x many, y 3 (kept: exactly 3), r 2, w 2 (A's target w not
    # counted), z 1 (E is filtered out before counting), t 0
    assert c.users_raw == 6 and c.users_in_basket_range == 4  # A, B, C, F (D: 2 days, E: 51)
    assert c.items_before_item_filter == 6  # x y r z t w
    assert c.items_kept == 2  # x, y
    assert c.users_with_target == 3  # C's target {r} is empty now
    assert c.users == 2  # B keeps only d1 {x, y} and its target: 2 baskets < 3
    assert data.users == ["A", "F"]
    assert data.histories["A"].baskets == (("x",), ("y",), ("x",))
    assert data.targets["A"] == ("y",)  # the last day, chronologically, whatever the row order
    assert data.histories["A"].dates == tuple(pd.Timestamp(day(n), tz="UTC") for n in (1, 2, 3))
    assert data.histories["A"].target_date == pd.Timestamp(day(4), tz="UTC")
    assert len(data.histories["F"].baskets) == 49 and data.targets["F"] == ("x",)
    assert c.items == 2 and c.baskets == 4 + 50 and c.history_rows == 3 + 49 and c.target_rows == 2
    assert c.purchase_rows == len(filter_events()) - 2  # the views are not purchases


def test_a_basket_is_a_calendar_day_whatever_the_time() -> None:
    rows = [(day(n), "U", "x") for n in (1, 2, 3)] + [(day(n), "V", "x") for n in (1, 2, 3)]
    events = make_events(rows)
    late = make_events([(day(3), "U", "y"), (day(1), "V", "y"), (day(2), "V", "y")])
    late["event_time"] += pd.Timedelta(hours=17)  # same days, later in the day
    data = nbr.preprocess(pd.concat([events, late], ignore_index=True), min_item_count=1)
    assert data.histories["U"].baskets == (("x",), ("x",))
    assert data.targets["U"] == ("x", "y")  # 00:00 and 17:00 on day 3: one target basket
    assert data.histories["V"].baskets == (("x", "y"), ("x", "y"))


def test_min_item_count_is_a_parameter() -> None:
    data = nbr.preprocess(filter_events(), min_item_count=2)  # now r and w (2 each) stay
    assert data.counts is not None and data.counts.items_kept == 4
    assert data.targets["A"] == ("r", "w", "y")
    assert "C" in data.users and data.targets["C"] == ("r",)


def test_dataset_from_merged_reads_the_published_format() -> None:
    data = nbr.dataset_from_merged({"1": [[1, 2], [2], [3, 3]], "2": [[1], []], "3": [[5], [6], [7]]})
    assert data.users == ["1", "3"]  # user 2 has one non-empty basket: nothing to predict from
    assert data.histories["1"].baskets == (("1", "2"), ("2",)) and data.targets["1"] == ("3",)
    assert data.histories["1"].target_date is None


# --- folds --------------------------------------------------------------------------------------------


def test_folds_72_8_20_disjoint_and_complete() -> None:
    users = [f"u{i:03d}" for i in range(100)]
    fold = nbr.make_fold(users, seed=0)
    assert (len(fold.train), len(fold.val), len(fold.test)) == (72, 8, 20)
    assert set(fold.train).isdisjoint(fold.val) and set(fold.train).isdisjoint(fold.test)
    assert set(fold.val).isdisjoint(fold.test)
    assert set(fold.train) | set(fold.val) | set(fold.test) == set(users)
    # the reference's cut points: int(10*4/5*0.9) = 7, int(10*4/5) = 8
    small = nbr.make_fold([str(i) for i in range(10)], seed=1)
    assert (len(small.train), len(small.val), len(small.test)) == (7, 1, 2)
    # the Ta Feng population size gives the sizes the bench reports
    big = nbr.make_fold([str(i) for i in range(13_929)], seed=0)
    assert (len(big.train), len(big.val), len(big.test)) == (10_028, 1_115, 2_786)


def test_folds_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    users = [f"u{i:03d}" for i in range(100)]
    assert nbr.make_fold(users, 3) == nbr.make_fold(list(reversed(users)), 3)  # input order is irrelevant
    folds = nbr.make_folds(users)
    assert [f.seed for f in folds] == [0, 1, 2, 3, 4]
    assert len({f.test for f in folds}) == 5
    assert folds[0].test == nbr.make_fold(users, 0).test


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_by_hand_ndcg_ideal_over_all_targets() -> None:
    truth = ["a", "b", "c"]
    pred = ["a", "x", "b", "y"]
    assert nbr.recall_at_k(truth, pred, 2) == pytest.approx(1 / 3)
    assert nbr.recall_at_k(truth, pred, 4) == pytest.approx(2 / 3)
    idcg_all = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # three targets, even at k = 2
    assert nbr.ndcg_at_k(truth, pred, 2) == pytest.approx(1 / idcg_all)
    assert nbr.ndcg_at_k(truth, pred, 2) != pytest.approx(1 / (1 + 1 / math.log2(3)))  # not min(|truth|, k)
    assert nbr.ndcg_at_k(truth, pred, 4) == pytest.approx((1 + 1 / math.log2(4)) / idcg_all)
    # a perfect top-2 list for a 3-item basket still scores below 1
    assert nbr.ndcg_at_k(truth, ["a", "b"], 2) == pytest.approx((1 + 1 / math.log2(3)) / idcg_all)
    assert nbr.phr_at_k(truth, ["x", "y", "a"], 2) == 0.0
    assert nbr.phr_at_k(truth, ["x", "y", "a"], 3) == 1.0
    assert nbr.recall_at_k(truth, [], 10) == 0.0
    assert set(nbr.user_metrics(truth, pred)) == set(nbr.METRICS)


def _tiny_dataset() -> NBRDataset:
    histories = {
        "u1": UserHistory(baskets=(("a", "b"), ("b", "c"), ("b",))),
        "u2": UserHistory(baskets=(("c", "d"), ("d",))),
        "u3": UserHistory(baskets=(("e",),)),
    }
    targets = {"u1": ("b", "z"), "u2": ("a",), "u3": ("e", "b")}
    return NBRDataset(histories=histories, targets=targets)


def test_evaluate_fold_means_missing_users_and_duplicates() -> None:
    data = _tiny_dataset()
    fold = Fold(seed=0, train=("u1",), val=(), test=("u1", "u2", "u3"))

    def fixed(histories, users, k):
        return {"u1": ["b", "x"], "u3": ["x", "b"]}  # u2 unanswered: scored as an empty list

    result = nbr.evaluate_fold(data, fold, fixed, ks=(1, 2))
    assert result.n_users == 3
    assert result.metrics["recall@1"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert result.metrics["recall@2"] == pytest.approx((1 / 2 + 0 + 1 / 2) / 3)
    idcg2 = 1 + 1 / math.log2(3)
    assert result.metrics["ndcg@2"] == pytest.approx((1 / idcg2 + 0 + (1 / math.log2(3)) / idcg2) / 3)
    assert result.metrics["phr@1"] == pytest.approx(1 / 3)
    assert result.metrics["phr@2"] == pytest.approx(2 / 3)

    def repeats(histories, users, k):
        return {u: ["b", "b"] for u in users}

    with pytest.raises(ValueError, match="repeats"):
        nbr.evaluate_fold(data, fold, repeats, ks=(2,))


def test_predictor_sees_histories_and_target_dates_never_targets() -> None:
    data = nbr.preprocess(filter_events())
    fold = Fold(seed=0, train=("F",), val=(), test=("A",))
    seen = {}

    def spy(histories, users, k):
        seen.update(histories=histories, users=list(users), k=k)
        return {"A": ["y"]}

    result = nbr.evaluate_fold(data, fold, spy)
    assert seen["users"] == ["A"] and seen["k"] == 20
    assert seen["histories"]["A"].target_date == pd.Timestamp(day(4), tz="UTC")
    assert all(d < seen["histories"]["A"].target_date for d in seen["histories"]["A"].dates)
    assert result.metrics["recall@10"] == 1.0


def test_summarise_mean_and_sample_std() -> None:
    results = [
        nbr.FoldResult(seed=s, split="test", n_users=1, metrics={"recall@10": v}) for s, v in enumerate((0.1, 0.3))
    ]
    summary = nbr.summarise(results)
    assert summary["recall@10"]["mean"] == pytest.approx(0.2)
    assert summary["recall@10"]["std"] == pytest.approx(math.sqrt(0.02))  # ddof = 1


# --- TopFreq baselines --------------------------------------------------------------------------------


def test_topfreq_baselines_by_hand() -> None:
    h = _tiny_dataset().histories
    users = ["u1", "u2", "u3"]
    # global history counts: b 3, c 2, d 2, a 1, e 1 (ties by id: c before d, a before e)
    assert nbr.global_ranking(h) == ["b", "c", "d", "a", "e"]
    assert nbr.g_topfreq(h, users, 2) == {"u1": ["b", "c"], "u2": ["b", "c"], "u3": ["b", "c"]}
    # u1: b 3, then a and c once each, a first seen first
    assert nbr.p_topfreq(h, users, 10) == {"u1": ["b", "a", "c"], "u2": ["d", "c"], "u3": ["e"]}
    assert nbr.p_topfreq(h, ["u1"], 2) == {"u1": ["b", "a"]}
    assert nbr.gp_topfreq(h, users, 3) == {"u1": ["b", "a", "c"], "u2": ["d", "c", "b"], "u3": ["e", "b", "c"]}
    assert nbr.gp_topfreq(h, ["u1"], 5) == {"u1": ["b", "a", "c", "d", "e"]}


def test_global_ties_follow_item_id_not_first_appearance() -> None:
    h = {"u": UserHistory(baskets=(("z",),)), "v": UserHistory(baskets=(("a",),))}
    assert nbr.global_ranking(h) == ["a", "z"]


def test_personal_ties_follow_first_appearance_not_item_id() -> None:
    history = UserHistory(baskets=(("z",), ("a",), ("a", "z"), ("m",)))
    assert nbr.personal_ranking(history) == ["z", "a", "m"]


# --- TIFUKNN ------------------------------------------------------------------------------------------


def test_group_boundaries_as_the_reference_groups() -> None:
    assert group_boundaries(3, 7) == [(0, 1), (1, 2), (2, 3)]
    assert group_boundaries(14, 7) == [(2 * g, 2 * g + 2) for g in range(7)]
    # 10 = 7 * 1 + 3: the first four groups hold one basket, the last three hold two
    assert group_boundaries(10, 7) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 8), (8, 10)]


def test_decayed_vector_values() -> None:
    p = TIFUKNNParams()  # within 0.9, group 0.7, group size 7
    # 3 baskets < 7 groups: each basket a group; group exponents start at 6 for the oldest; / 3 groups
    w = basket_weights(3, p)
    assert w == pytest.approx([0.9**2 * 0.7**6 / 3, 0.9 * 0.7**5 / 3, 0.7**4 / 3])
    # 8 baskets: groups of 1,1,1,1,1,1,2; the newest group (baskets 6, 7) has group decay 1 and size 2
    w8 = basket_weights(8, p)
    assert w8[7] == pytest.approx(1 / 2 / 7)
    assert w8[6] == pytest.approx(0.9 / 2 / 7)
    assert w8[0] == pytest.approx(0.9**7 * 0.7**6 / 7)
    hist = {"u": UserHistory(baskets=(("x",), ("x", "y"), ("y",)))}
    vec = user_vectors(hist, ["u"], {"x": 0, "y": 1}, p).toarray()[0]
    assert vec == pytest.approx([w[0] + w[1], w[1] + w[2]])


def test_tifuknn_recommends_the_neighbours_item() -> None:
    hist = {
        "q": UserHistory(baskets=(("a",), ("a",), ("a",))),
        "near": UserHistory(baskets=(("a",), ("a",), ("b",))),  # distance^2 = 2 w2^2
        "far": UserHistory(baskets=(("c",), ("c",), ("c",))),  # distance^2 = 2 (w0+w1+w2)^2
    }
    p = TIFUKNNParams(num_neighbors=1)
    assert TIFUKNN(["near", "far"], p)(hist, ["q"], 2) == {"q": ["a", "b"]}
    # the score of b is (1 - alpha) * the neighbour's b = 0.3 * w2; own items weigh alpha = 0.7
    w = basket_weights(3, p)
    assert 0.3 * w[2] < 0.7 * w.sum()
    # neighbours come only from the given pool (the fold's training users)
    assert TIFUKNN(["far"], p)(hist, ["q"], 2) == {"q": ["a", "c"]}


def test_tifuknn_scores_on_a_fold() -> None:
    data = _tiny_dataset()
    fold = Fold(seed=0, train=("u1", "u2"), val=(), test=("u3",))
    model = TIFUKNN(fold.train, TIFUKNNParams(num_neighbors=1))
    pred = model(data.histories, ["u3"], 3)["u3"]
    assert pred[0] == "e" and len(pred) == 3 and len(set(pred)) == 3
    result = nbr.evaluate_fold(data, fold, model, ks=(1,))
    assert result.metrics["recall@1"] == pytest.approx(0.5)  # target {e, b}: e at rank 1
    assert np.isfinite(list(result.metrics.values())).all()
