from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def training_set(interval_end: str, n_snapshots: int, max_users_per_cutoff: int, seed: int,
                 interactions: dsl.Input[dsl.Dataset], snapshots: dsl.Input[dsl.Dataset],
                 dataset: dsl.Output[dsl.Dataset]):
    """Labels from future purchases + point-in-time features from the Feast feature service."""
    from pathlib import Path

    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.orchestration import steps

    config = TrainingSetConfig(max_users_per_cutoff=max_users_per_cutoff, seed=seed)
    dataset.metadata.update(steps.training_set(interval_end, Path(dataset.path), config, n_snapshots,
                                               interactions_path=Path(interactions.path),
                                               snapshots_dir=Path(snapshots.path)))
