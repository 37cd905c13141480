"""The nightly's sequence-model step: train on the purchases before the last week, judge on the items
each shopper bought for the first time in that week, export, prove it serves, bless.

Why judged on first purchases: the sequence model is the ranker's candidate source for items the
shopper has not bought yet (their own items are a candidate source already), so its job is to put
those near the top. It must beat popularity, the source it competes with for candidate places, and
not fall behind the sequence model in production; item co-occurrence is measured beside it for the
record. The candidate and production are scored through their exported SavedModels, the way the
online path asks them, with each shopper's history built by `item_sequences`, the definition of the
`user_item_sequence` Feast field the online path reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from shoprank.evaluation.baselines import canonical_purchases, evaluate_recommender
from shoprank.evaluation.blessing import SEQUENCE_RULES, BlessingRules, load_rules
from shoprank.evaluation.judge import Evaluation, judge
from shoprank.evaluation.protocols import new_items_split
from shoprank.features.recommenders import ItemCooccurrence, PopularityRecommender
from shoprank.models import SEQUENCE_MODEL_NAME
from shoprank.orchestration.steps import production_model_dir, read_interactions
from shoprank.settings import Settings, load_settings

HOLDOUT_DAYS = 7  # the judged week: the ranker's label window
KS = (10, 20)


def holdout_cutoff(interactions: pd.DataFrame, days: int = HOLDOUT_DAYS) -> pd.Timestamp:
    """The start of the last `days` whole days of the data."""
    end = pd.Timestamp(interactions["event_time"].max()).floor("D") + pd.Timedelta(days=1)
    return end - pd.Timedelta(days=days)


def train_sequence(interactions_path: Path, model_dir: Path, out_dir: Path, settings: Settings | None = None,
                   seed: int = 0, epochs: int | None = None, rules: BlessingRules | None = None) -> Evaluation:
    """Train, export to `model_dir`, judge, infra-validate when blessed; the evaluation to `out_dir`."""
    from shoprank.models.card import ModelCard
    from shoprank.models.sequence import (
        ExportedSequenceModel,
        SequenceConfig,
        SequenceRecommender,
        export_sequence_model,
    )
    from shoprank.models.sequence_input import history_input, item_sequences
    from shoprank.serving.registry.infra_validate import infra_validate

    settings = settings or load_settings()
    rules = rules or load_rules(SEQUENCE_RULES)
    events = canonical_purchases(read_interactions(interactions_path, "sequence_model", purchases_only=True))
    cutoff = holdout_cutoff(events)
    split = new_items_split(events, cutoff)
    if not split.test_users:
        raise ValueError(f"sequence_model: nobody bought an item new to them after {cutoff.date()}: "
                         "nothing to judge the model on")
    config = SequenceConfig(seed=seed) if epochs is None else SequenceConfig(seed=seed, epochs=epochs)
    trained = SequenceRecommender(config).fit(split.train)
    facts = {"test_users": len(split.test_users), "holdout_from": str(cutoff), "epochs": len(trained.history["loss"]),
             "train_seconds": trained.train_seconds, "examples_per_second": trained.examples_per_second,
             "vocabulary": len(trained.vocabulary)}
    card = ModelCard(model=SEQUENCE_MODEL_NAME, device=trained.device, precision=trained.precision,
                     history=trained.history, parameters=vars(config), facts=facts,
                     data_cutoffs=[str(cutoff)], train_seconds=trained.train_seconds,
                     examples_per_second=trained.examples_per_second,
                     notes={"input": "history: item ids, oldest first, left-padded with '' (user_item_sequence)"})
    export_sequence_model(trained, Path(model_dir), card=card)
    baselines = {model.name: evaluate_recommender(model, split, KS)["metrics"]
                 for model in (PopularityRecommender(), ItemCooccurrence())}

    def score(model: str) -> dict[str, float]:
        return evaluate_recommender(ExportedSequenceModel(model), split, KS)["metrics"]

    evaluation = judge(SEQUENCE_MODEL_NAME, score, model_dir, baselines, rules,
                       production_model_dir(settings, SEQUENCE_MODEL_NAME), facts=facts)
    if evaluation.blessed:
        sequences = item_sequences(split.train, last=config.max_len)
        requests = history_input([sequences.get(u, []) for u in split.test_users[:64]], config.max_len)
        evaluation.extra["infra_validation"] = infra_validate(Path(model_dir), SEQUENCE_MODEL_NAME,
                                                             {"history": requests}, output="scores")
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    Path(out_dir).write_text(json.dumps(evaluation.as_dict(), indent=2, default=str))
    return evaluation
