from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def neighbours(crossing: dsl.Input[dsl.Artifact], snapshots: dsl.Input[dsl.Dataset], stats: dsl.Output[dsl.Metrics]):
    """The popular list (cold-start answers) and each item's bought-together neighbours (session
    candidates), published beside the features for the API."""
    from pathlib import Path

    from shoprank.orchestration import steps

    for key, value in steps.neighbours(Path(crossing.path), Path(snapshots.path)).items():
        stats.log_metric(key, value)
