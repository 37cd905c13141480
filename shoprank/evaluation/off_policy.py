"""What a new ranker would have earned on the lists already served, before it gets any traffic.

The served lists of the held-out period carry each shown item's position and whether it was bought
within the label window. A new ranker re-orders each list's shown items into the same slots. Under
the position-based model (a shopper examines slot p with probability theta_p, and buys an examined
item with a probability of its own), the item-position estimator weighs every purchase by
theta_new / theta_logged: a purchase logged at slot 8 counts for more once the new ranker puts the
item at slot 1, because slot 1 is examined more. It is unbiased where the examination model holds
and every item the new order shows was shown before, which re-ordering the shown items guarantees
(Li et al., "Offline Evaluation of Ranking Policies with Click Models", KDD 2018).

theta comes from the ranker's own position-bias tower (its model card): its logit offsets are
learned on the same logged impressions, and for rare purchases exp(b_p) is proportional to the
examination probability. Weights are clipped (`clip`), trading a little bias for variance; the share
of clipped weights is reported. Intervals are percentile bootstraps over lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CLIP = 10.0  # the largest weight one purchase may get
BOOTSTRAP = 400


def examination(position_bias: Sequence[float] | None) -> np.ndarray | None:
    """theta by slot (index 0 unused) from the learned logit offsets, slot 1 = 1; None where the
    ranker learned no bias (no logged impressions trained it: every offset is still 0)."""
    if position_bias is None or len(position_bias) < 3:
        return None
    bias = np.asarray(position_bias, dtype=float)
    if not np.any(bias[1:] != 0):
        return None
    theta = np.exp(bias - bias[1])
    theta[0] = np.nan
    return theta


def _theta_at(theta: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Past the learned slots, the last learned one's examination."""
    return theta[np.clip(slots, 1, len(theta) - 1)]


def list_weights(rows: pd.DataFrame, scores: np.ndarray, theta: np.ndarray, clip: float = CLIP
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(list id per row, weight per row): each list's shown items re-ordered by `scores` into the
    list's own slots (best score to the smallest slot; ties by item id), weight theta_new/theta_logged."""
    key = rows["user_key"].astype(str) + "@" + rows["event_timestamp"].astype(str)
    frame = pd.DataFrame({"list": key.to_numpy(), "item": rows["item_id"].astype(str).to_numpy(),
                          "slot": rows["shown_position"].astype("int64").to_numpy(),
                          "score": np.asarray(scores, dtype=float), "row": np.arange(len(rows))})
    by_score = frame.sort_values(["list", "score", "item"], ascending=[True, False, True], kind="mergesort")
    by_slot = frame.sort_values(["list", "slot", "item"], kind="mergesort")
    new_slot = np.empty(len(frame), dtype=np.int64)
    new_slot[by_score["row"].to_numpy()] = by_slot["slot"].to_numpy()  # both grouped by list in the same order
    weight = _theta_at(theta, new_slot) / _theta_at(theta, frame["slot"].to_numpy())
    return pd.factorize(frame["list"])[0], np.minimum(weight, clip)


def _per_list(lists: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(lists, weights=values, minlength=n)


def estimate(rows: pd.DataFrame, scores: np.ndarray, theta: np.ndarray, clip: float = CLIP,
             n_boot: int = BOOTSTRAP, seed: int = 0) -> dict[str, float | list[float] | int]:
    """Purchases per served list: as logged, and as the ranker's re-ordering would have earned (IPS),
    with the difference's 95% interval. `rows`: shown rows only
    (`shown_position` > 0) with `label`, `user_key`, `event_timestamp`, `item_id`."""
    shown = rows["shown_position"].to_numpy() > 0
    rows, scores = rows[shown].reset_index(drop=True), np.asarray(scores)[shown]
    lists, weight = list_weights(rows, scores, theta, clip)
    n = int(lists.max()) + 1 if len(lists) else 0
    if n == 0:
        return {"lists": 0}
    label = rows["label"].to_numpy(dtype=float)
    logged = _per_list(lists, label, n)
    ips = _per_list(lists, label * weight, n)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    diffs = (ips[draws] - logged[draws]).mean(axis=1)
    return {"lists": n, "purchases_per_list_logged": float(logged.mean()),
            "purchases_per_list_ips": float(ips.mean()),
            "ips_minus_logged": float(ips.mean() - logged.mean()),
            "ips_minus_logged_95": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
            "clipped_share": float((weight >= clip).mean()), "clip": clip}


def read_position_bias(model_dir: str | Path) -> list[float] | None:
    """The position-bias offsets in a ranker version's model card (None: none learned, no card)."""
    from shoprank.models import CARD_FILE
    from shoprank.models.card import ModelCard

    path = Path(model_dir) / CARD_FILE
    return ModelCard.from_json(path.read_text()).position_bias if path.exists() else None


def served_report(rows: pd.DataFrame, scored: Mapping[str, tuple[str, np.ndarray]]) -> dict:
    """The estimate for each ranker in `scored` (name -> (model dir, scores of `rows`)), all under one
    examination model: the first of them whose card learned one (the candidate's, normally), since
    examination belongs to the shop's pages, not to a ranker."""
    theta, source = None, None
    for name, (model_dir, _) in scored.items():
        theta = examination(read_position_bias(model_dir))
        if theta is not None:
            source = name
            break
    if theta is None:
        return {"estimator": "item-position IPS", "skipped": "no ranker learned a position bias (no logged "
                                                            "impressions in its training set)"}
    return {"estimator": "item-position IPS", "examination_from": source,
            "examination": [round(float(t), 4) for t in theta[1:]],
            **{name: estimate(rows, scores, theta) for name, (_, scores) in scored.items()}}
