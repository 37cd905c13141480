from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def training_set(max_users_per_cutoff: int, seed: int, crossing: dsl.Input[dsl.Artifact],
                 interactions: dsl.Input[dsl.Dataset], impressions: dsl.Input[dsl.Dataset],
                 snapshots: dsl.Input[dsl.Dataset], online: dsl.Input[dsl.Artifact], dataset: dsl.Output[dsl.Dataset]):
    """Labels from future purchases + point-in-time features from the Feast feature service.
    `online` (the materialise step's output) orders this step after Feast has applied the views."""
    from pathlib import Path

    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.orchestration import steps

    config = TrainingSetConfig(max_users_per_cutoff=max_users_per_cutoff, seed=seed)
    dataset.metadata.update(steps.training_set(Path(crossing.path), Path(dataset.path), config,
                                               interactions_path=Path(interactions.path),
                                               snapshots_dir=Path(snapshots.path),
                                               impressions_path=Path(impressions.path)))
