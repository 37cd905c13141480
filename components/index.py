from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def index(snapshots: dsl.Input[dsl.Dataset], interval_start: str, interval_end: str,
          search_index: dsl.Output[dsl.Artifact]):
    """Build the lexical search index over the whole catalogue and publish it as the next version
    beside the models (manifest last: the API never loads half an index). The artifact is the index
    folder the search ranker trains against; its metadata names the published version."""
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.build_index(Path(search_index.path), Path(snapshots.path),
                               lineage={"data_interval": [interval_start, interval_end]})
    search_index.metadata.update(result)
    print(f"search index {result}")
