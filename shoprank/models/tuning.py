"""A small random hyperparameter search for the ranker, switchable from the pipeline.

Each trial trains with a sampled `TrainConfig` and is judged on the validation rows only, by the
base configuration's early-stopping metric (`monitor`), never on the test period; the best
configuration is returned with every trial's record so the run report shows what was tried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from shoprank.models.train import MONITORS, TrainConfig, train_ranker

SEARCH_SPACE: dict[str, Sequence] = {
    "learning_rate": (1e-3, 2e-3, 3e-3, 5e-3),
    "hidden": (32, 64, 128),
    "n_cross": (1, 2, 3),
    "dropout": (0.0, 0.1, 0.2),
    "embedding_dim": (8, 16),
}


@dataclasses.dataclass
class SearchResult:
    best: TrainConfig
    best_score: float
    trials: list[dict]


def sample_configs(base: TrainConfig, n_trials: int, seed: int = 0,
                   space: Mapping[str, Sequence] = SEARCH_SPACE) -> list[TrainConfig]:
    """`n_trials` configurations: the base first, then random draws from the space (seeded)."""
    rng = np.random.default_rng(seed)
    configs = [base]
    seen = {tuple(sorted(dataclasses.asdict(base).items()))}
    for _ in range(n_trials * 20):
        if len(configs) >= n_trials:
            break
        draw = {name: values[int(rng.integers(len(values)))] for name, values in space.items()}
        config = dataclasses.replace(base, **draw)
        key = tuple(sorted(dataclasses.asdict(config).items()))
        if key not in seen:
            seen.add(key)
            configs.append(config)
    return configs


def random_search(train: pd.DataFrame, validation: pd.DataFrame, base: TrainConfig | None = None,
                  n_trials: int = 4, seed: int = 0, verbose: int = 0) -> SearchResult:
    """Train each sampled configuration; the best validation `monitor` wins (ties: the earlier trial)."""
    base = base or TrainConfig()
    trials, best, best_score = [], base, -np.inf
    sign = 1.0 if MONITORS[base.monitor] == "max" else -1.0
    for config in sample_configs(base, n_trials, seed):
        # a trial is judged on one member: an ensemble averages seeds of the same configuration
        result = train_ranker(train, validation, dataclasses.replace(config, ensemble=1), verbose=verbose)
        score = sign * max(sign * v for v in result.history.get(base.monitor, [float("nan")]))
        trials.append({"config": dataclasses.asdict(config), base.monitor: score,
                       "epochs": len(result.history["loss"])})
        if sign * score > best_score:
            best, best_score = config, sign * score
    return SearchResult(best=best, best_score=float(sign * best_score), trials=trials)
