"""The off-policy estimate of a ranker's purchases per served list, against simulated shoppers whose
examination by slot and appetite per item are known: it finds the new order's true value where
the logged rate does not, it is exact for the logged order itself, and it refuses to guess without
a position-bias model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.evaluation.off_policy import estimate, examination

SLOTS = 10
THETA = 1.0 / np.arange(1, SLOTS + 1)  # slot p is examined with probability 1/p


def _logged(n_lists: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Lists of ten items in random order (the logging ranker), bought with probability
    theta(slot) * appetite(item); (rows, each row's appetite)."""
    rng = np.random.default_rng(seed)
    appetite = rng.uniform(0, 0.4, size=(n_lists, SLOTS))
    slots = np.argsort(rng.random((n_lists, SLOTS)), axis=1) + 1
    bought = rng.random((n_lists, SLOTS)) < THETA[slots - 1] * appetite
    rows = pd.DataFrame({"user_key": np.repeat([f"u{n}" for n in range(n_lists)], SLOTS),
                         "event_timestamp": pd.Timestamp("2026-12-01", tz="UTC"),
                         "item_id": [f"i{j}" for _ in range(n_lists) for j in range(SLOTS)],
                         "shown_position": slots.ravel(), "label": bought.ravel().astype(int)})
    return rows, appetite.ravel()


def _bias() -> list[float]:
    return [0.0, *np.log(THETA).tolist()]  # as the model card holds it: offset per slot, index 0 unused


def test_the_estimate_finds_a_better_orders_true_value_where_the_logged_rate_does_not():
    rows, appetite = _logged(20_000)
    theta = examination(_bias())
    result = estimate(rows, appetite, theta, clip=100.0)
    per_list = appetite.reshape(-1, SLOTS)
    truth = (np.sort(per_list, axis=1)[:, ::-1] * THETA).sum(axis=1).mean()  # best appetite in slot 1, ...
    assert abs(result["purchases_per_list_ips"] - truth) < 0.03 * truth
    assert result["purchases_per_list_logged"] < 0.85 * truth  # the random order earns much less
    low, high = result["ips_minus_logged_95"]
    assert low < truth - result["purchases_per_list_logged"] < high and low > 0


def test_the_logged_order_itself_is_estimated_exactly_and_a_worse_order_below_it():
    rows, appetite = _logged(5_000, seed=1)
    theta = examination(_bias())
    same = estimate(rows, -rows["shown_position"].to_numpy(dtype=float), theta)
    assert same["purchases_per_list_ips"] == same["purchases_per_list_logged"] and same["clipped_share"] == 0
    worse = estimate(rows, -appetite, theta, clip=100.0)
    assert worse["ips_minus_logged_95"][1] < 0


def test_without_a_learned_position_bias_there_is_no_estimate():
    assert examination(None) is None and examination([0.0] * 21) is None
    theta = examination([0.0, 0.0, -0.5, -1.0])
    assert theta[1] == 1.0 and theta[3] < theta[2] < 1.0
