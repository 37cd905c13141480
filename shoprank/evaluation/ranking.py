"""From model scores over candidate rows to rankings and their figures: the ranked lists per user
(or per served list), the AUC of the scores, and how a model orders the lists that were served.

Shared by the nightly's judge, the quality and loop benches, and the tests: one definition of each."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.evaluation.metrics import evaluate_rankings


def score_examples(model_dir: str, frame: pd.DataFrame) -> np.ndarray:
    """The ranker SavedModel's score for each training-set row (its model inputs, in batches): what
    the evaluate step scores the candidate and the production model with, the same way."""
    from shoprank.features.derived import model_inputs
    from shoprank.models.export import score_saved_model

    return score_saved_model(model_dir, model_inputs(frame))


def rank_by_score(frame: pd.DataFrame, scores: np.ndarray, k: int) -> dict[str, list[str]]:
    """Each user's candidates ordered by score (ties: item id), cut at k."""
    ranked = frame[["user_key", "item_id"]].assign(score=scores).sort_values(
        ["user_key", "score", "item_id"], ascending=[True, False, True])
    return ranked.groupby("user_key", sort=False)["item_id"].agg(lambda s: s.head(k).tolist()).to_dict()


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) identity, ties averaged."""
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def served_list_metrics(rows: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """How a model orders the lists that were served in the held-out period (`served_test` rows, with
    the session inputs the shopper had then): NDCG@10 and MRR of the items bought from each list, over
    the lists with a purchase, and the AUC over all their rows. Reported beside the cut-off metrics,
    not judged: the lists are what the previous model chose, so they are not the candidates a new
    model would rank."""
    lists = rows["user_key"].astype(str) + "@" + rows["event_timestamp"].astype(str)
    keyed = rows.assign(user_key=lists)
    truth = keyed[keyed["label"] == 1].groupby("user_key")["item_id"].agg(set).to_dict()
    metrics = evaluate_rankings(rank_by_score(keyed, scores, 10), truth, ks=(10,), n_items=max(len(rows), 1))
    return {"ndcg@10": metrics["ndcg@10"], "mrr": metrics["mrr"], "auc": auc(rows["label"].to_numpy(), scores),
            "lists_with_purchase": len(truth)}
