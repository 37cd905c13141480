"""Metric correctness on cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation.metrics import evaluate_rankings, format_table, metric_names

L2 = math.log2


def test_keys_are_exactly_the_issue_names() -> None:
    result = evaluate_rankings({"u": ["a"]}, {"u": ["a"]}, n_items=5)
    assert list(result) == ["recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10", "hr@20", "mrr",
                            "coverage@10", "coverage@20"]
    assert metric_names() == list(result)


def test_hand_computed_two_users() -> None:
    truth = {"u": ["a", "b"], "v": ["c"]}
    rankings = {"u": ["a", "x", "b"], "v": ["x", "c", "y"]}
    r = evaluate_rankings(rankings, truth, ks=(1, 3), n_items=10)
    # u: hits at ranks 1 and 3; v: a hit at rank 2.
    assert r["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert r["recall@3"] == pytest.approx((1 + 1) / 2)
    ndcg3_u = (1 + 1 / L2(4)) / (1 + 1 / L2(3))
    ndcg3_v = (1 / L2(3)) / 1
    assert r["ndcg@1"] == pytest.approx((1 + 0) / 2)
    assert r["ndcg@3"] == pytest.approx((ndcg3_u + ndcg3_v) / 2)
    assert r["hr@1"] == pytest.approx(0.5)
    assert r["hr@3"] == pytest.approx(1.0)
    assert r["mrr"] == pytest.approx((1 + 1 / 2) / 2)
    # top-1 lists: {a, x}; top-3 lists: {a, x, b, c, y}
    assert r["coverage@1"] == pytest.approx(2 / 10)
    assert r["coverage@3"] == pytest.approx(5 / 10)


def test_empty_truth_users_are_excluded_and_missing_rankings_score_zero() -> None:
    truth = {"u": ["a"], "empty": [], "silent": ["b"]}
    rankings = {"u": ["a"], "empty": ["a"], "stranger": ["b"]}
    r, frame = evaluate_rankings(rankings, truth, ks=(1,), n_items=4, per_user=True)
    assert frame["user_id"].tolist() == ["silent", "u"]  # "empty" dropped, "stranger" ignored
    assert r["recall@1"] == pytest.approx(0.5)  # the silent user counts as a miss
    assert r["mrr"] == pytest.approx(0.5)
    assert r["coverage@1"] == pytest.approx(1 / 4)  # only evaluated users' lists count


def test_fewer_than_k_recommendations() -> None:
    r = evaluate_rankings({"u": ["a"]}, {"u": ["a", "b"]}, ks=(10,), n_items=100)
    assert r["recall@10"] == pytest.approx(0.5)
    assert r["ndcg@10"] == pytest.approx(1 / (1 + 1 / L2(3)))
    assert r["hr@10"] == 1.0
    assert r["coverage@10"] == pytest.approx(0.01)


def test_duplicates_earn_nothing_and_waste_the_slot() -> None:
    r = evaluate_rankings({"u": ["a", "a", "b"]}, {"u": ["a", "b"]}, ks=(2, 3), n_items=10)
    assert r["recall@2"] == pytest.approx(0.5)  # the second "a" is not a second hit
    assert r["ndcg@2"] == pytest.approx(1 / (1 + 1 / L2(3)))
    assert r["recall@3"] == pytest.approx(1.0)
    assert r["ndcg@3"] == pytest.approx((1 + 1 / L2(4)) / (1 + 1 / L2(3)))
    # duplicates in the truth collapse too
    r2 = evaluate_rankings({"u": ["a"]}, {"u": ["a", "a"]}, ks=(1,), n_items=10)
    assert r2["recall@1"] == 1.0


def test_ideal_dcg_uses_min_of_truth_size_and_k() -> None:
    r = evaluate_rankings({"u": ["a", "b"]}, {"u": ["a", "b", "c", "d", "e"]}, ks=(2,), n_items=10)
    assert r["ndcg@2"] == pytest.approx(1.0)
    assert r["recall@2"] == pytest.approx(2 / 5)


def test_mrr_reads_only_the_first_max_k_positions() -> None:
    r = evaluate_rankings({"u": ["x", "y", "a"]}, {"u": ["a"]}, ks=(2,), n_items=10)
    assert r["mrr"] == 0.0
    r = evaluate_rankings({"u": ["x", "y", "a"]}, {"u": ["a"]}, ks=(3,), n_items=10)
    assert r["mrr"] == pytest.approx(1 / 3)


def test_array_input_matches_dict_input() -> None:
    vocab = ["a", "b", "c", "x", "y"]
    truth = {"u": ["a", "b"], "v": ["c", "zz"]}  # "zz" unknown to the model: counted, never hit
    dict_rankings = {"u": ["a", "x", "b"], "v": ["y", "c"]}
    array = np.array([[1, 3, 2], [0, 3, 1], [4, 2, -1]])  # row 0 is a user outside the truth
    rows = ["w", "u", "v"]
    via_array = evaluate_rankings(array, truth, ks=(1, 3), n_items=5, row_users=rows, item_vocab=vocab)
    via_dict = evaluate_rankings(dict_rankings, truth, ks=(1, 3), n_items=5)
    assert via_array == pytest.approx(via_dict)
    assert via_dict["recall@3"] == pytest.approx((1 + 1 / 2) / 2)


def test_truth_as_frame_and_per_user_frame() -> None:
    truth = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "c"]})
    summary, frame = evaluate_rankings({"u": ["b"], "v": ["c"]}, truth, ks=(1,), n_items=3, per_user=True)
    assert frame.set_index("user_id")["recall@1"].to_dict() == {"u": 0.5, "v": 1.0}
    assert frame.set_index("user_id")["n_truth"].to_dict() == {"u": 2, "v": 1}
    assert frame["rr"].tolist() == [1.0, 1.0]
    assert summary["recall@1"] == pytest.approx(frame["recall@1"].mean())


def test_no_users_gives_nan_not_an_error() -> None:
    r = evaluate_rankings({}, {"u": []}, n_items=3)
    assert all(math.isnan(v) for v in r.values())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        evaluate_rankings({}, {}, ks=(0,), n_items=1)
    with pytest.raises(ValueError):
        evaluate_rankings(np.zeros((1, 2), dtype=int), {"u": ["a"]}, n_items=1)
    with pytest.raises(ValueError):
        evaluate_rankings({}, {}, n_items=0)


def test_vectorised_path_is_fast_enough() -> None:
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(30_000)]
    truth = {u: [f"i{j}" for j in rng.integers(0, 5000, 5)] for u in users}
    rankings = {u: [f"i{j}" for j in rng.integers(0, 5000, 20)] for u in users}
    import time

    start = time.perf_counter()
    evaluate_rankings(rankings, truth, n_items=5000)
    assert time.perf_counter() - start < 5


def test_format_table_lists_every_metric() -> None:
    text = format_table({"m": {"recall@10": 0.5}})
    assert "recall@10" in text.splitlines()[0] and "0.5000" in text
