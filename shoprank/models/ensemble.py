"""Seed ensembles of the ranker: N members trained from different seeds, served as one model.

Why: on Ta Feng a single ranker's test recall@20 moves by ±0.0035-0.005 with nothing but the seed
(initialisation, list order, dropout, and the early-stopping epoch that follows from them). The mean
of members trained from different seeds keeps what they agree on: in the quality harness three
members raised validation recall@20 +0.9% and NDCG@10 +1.2% over a single member (mean of the
members), for three times the ranker's training (seconds to minutes; features dominate the run).

Training the members is `models.train`'s (`train_ranker` with `ensemble` > 1); this module holds
the seeds and the averaging only, so the two do not import each other.

The members are wrapped in one Keras model whose `score` is the mean of their scores, so the
export, TF Serving and the online path see the same inputs and the same output as for one ranker.
"""

from __future__ import annotations

import keras

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
