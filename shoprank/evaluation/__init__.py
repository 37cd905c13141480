"""Evaluation: exact ranking metrics, the two protocols, the baselines, and the blessing rules.

    split = temporal_split(events)                      # or make_split("leave_last_out", events)
    result = evaluate_recommender(PersonalThenPopular(), split)
    result["metrics"]["recall@20"]

A model plugs in either as a `Recommender` (fit / recommend) or by handing its rankings (a dict or
a top-k index matrix) straight to `evaluate_rankings` with `split.truth` and `split.n_items`.
"""

from shoprank.evaluation.baselines import (
    ItemCooccurrence,
    PersonalThenPopular,
    PersonalTopFrequency,
    PopularityRecommender,
    Recommender,
    default_baselines,
    evaluate_recommender,
)
from shoprank.evaluation.metrics import evaluate_rankings, format_table, metric_names, truth_from_frame
from shoprank.evaluation.protocols import (
    PROTOCOLS,
    Split,
    interaction_sequences,
    leave_last_out_split,
    make_split,
    temporal_split,
)

__all__ = [
    "PROTOCOLS",
    "ItemCooccurrence",
    "PersonalThenPopular",
    "PersonalTopFrequency",
    "PopularityRecommender",
    "Recommender",
    "Split",
    "default_baselines",
    "evaluate_rankings",
    "evaluate_recommender",
    "format_table",
    "interaction_sequences",
    "leave_last_out_split",
    "make_split",
    "metric_names",
    "temporal_split",
    "truth_from_frame",
]
