from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def neighbours(crossing: dsl.Input[dsl.Artifact], snapshots: dsl.Input[dsl.Dataset],
               catalogue: dsl.Input[dsl.Dataset], stats: dsl.Output[dsl.Metrics]):
    """The popular list (cold-start answers), each item's bought-together neighbours (session
    candidates, `/bought-together`), its similar items (`/similar`, out-of-stock substitutes) and the
    catalogue the API describes items by, published beside the features for the API."""
    from pathlib import Path

    from shoprank.orchestration import steps

    for key, value in steps.neighbours(Path(crossing.path), Path(snapshots.path),
                                       catalogue_path=Path(catalogue.path)).items():
        stats.log_metric(key, value)
