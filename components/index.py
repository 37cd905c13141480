from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def index(crossing: dsl.Input[dsl.Artifact], snapshots: dsl.Input[dsl.Dataset], catalogue: dsl.Input[dsl.Dataset],
          search_index: dsl.Output[dsl.Artifact]):
    """Build the lexical search index over the whole catalogue and publish it as the next version
    beside the models (manifest last: the API never loads half an index). The artifact is the index
    folder the search ranker trains against; its metadata names the published version."""
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.build_index(Path(search_index.path), Path(snapshots.path), catalogue_path=Path(catalogue.path),
                               lineage={"data_interval": crossing.metadata["interval"]})
    search_index.metadata.update(result)
    print(f"search index {result}")
