from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def snapshots(crossing: dsl.Input[dsl.Artifact], interactions: dsl.Input[dsl.Dataset],
              catalogue: dsl.Input[dsl.Dataset], snapshots: dsl.Output[dsl.Dataset], stats: dsl.Output[dsl.Metrics]):
    """The user and item feature snapshots at the crossing's snapshot times: Feast's offline
    sources, and the `snapshots` artifact the training set, the index and the search ranker read."""
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.snapshots(Path(crossing.path), Path(interactions.path), Path(catalogue.path), Path(snapshots.path))
    snapshots.metadata.update(result)
    for key in ("user_rows", "item_rows"):
        stats.log_metric(key, result[key])
