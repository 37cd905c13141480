"""Seed ensembles of the ranker: N members trained from different seeds, served as one model.

Why: on Ta Feng a single ranker's test recall@20 moves by ±0.0035-0.005 with nothing but the seed
(initialisation, list order, dropout, and the early-stopping epoch that follows from them). The mean
of members trained from different seeds keeps what they agree on: in the issue-4 harness three
members raised validation recall@20 +0.9% and NDCG@10 +1.2% over a single member (mean of the
members), for three times the ranker's training (seconds to minutes; features dominate the run).

The members are wrapped in one Keras model whose `score` is the mean of their scores, so the
export, TF Serving and the online path see the same inputs and the same output as for one ranker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import pandas as pd

if TYPE_CHECKING:
    from shoprank.models.train import TrainConfig, TrainResult

SEED_STRIDE = 1000  # member j of run seed s trains with seed s + j * SEED_STRIDE: runs never share a member


def member_seeds(seed: int, members: int) -> list[int]:
    """The seeds of an ensemble's members; the first is the run's own seed (one member = one plain ranker)."""
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, got ensemble={members}")
    return [seed + j * SEED_STRIDE for j in range(members)]


def average_models(models: list[keras.Model]) -> keras.Model:
    """One model over the members' shared named inputs whose output `score` is the mean of theirs."""
    inputs = {inp.name.split(":")[0]: keras.Input(shape=inp.shape[1:], dtype=inp.dtype, name=inp.name.split(":")[0])
              for inp in models[0].inputs}
    outputs = []
    for j, member in enumerate(models):
        member.name = f"member_{j}"  # layer names of a functional model must be unique
        outputs.append(member(inputs))
    return keras.Model(inputs, keras.layers.Average(name="score")(outputs), name="ranker_ensemble")


def train_ensemble(train: pd.DataFrame, validation: pd.DataFrame, config: TrainConfig,
                   log_dir: Path | None = None, verbose: int = 2) -> TrainResult:
    """Train `config.ensemble` rankers (seeds from `member_seeds`) and return their average as one result.

    The history is the first member's (the curves in the report); every member's history is in
    `extra["members"]`. Throughput counts the examples of all members over their summed time.
    """
    from shoprank.models.train import TrainResult, train_ranker

    results = []
    for j, seed in enumerate(member_seeds(config.seed, config.ensemble)):
        member_config = dataclasses.replace(config, seed=seed, ensemble=1)
        results.append(train_ranker(train, validation, member_config,
                                    log_dir=Path(log_dir) / f"member_{j}" if log_dir is not None else None,
                                    verbose=verbose))
    examples = sum(len(r.history["loss"]) * len(train) for r in results)
    seconds = sum(len(r.history["loss"]) * len(train) / max(r.examples_per_second, 1e-9) for r in results)
    members = [{"seed": s, "epochs": len(r.history["loss"]), "history": r.history}
               for s, r in zip(member_seeds(config.seed, config.ensemble), results, strict=True)]
    return TrainResult(model=average_models([r.model for r in results]), history=results[0].history,
                       examples_per_second=examples / max(seconds, 1e-9), device=results[0].device, config=config,
                       extra={"members": members})
