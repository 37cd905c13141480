from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def ingest(source: str, source_path: str, interval_start: str, interval_end: str, batch: dsl.Output[dsl.Dataset]):
    """Stage the data interval from the source as canonical parquet."""
    from pathlib import Path

    from shoprank.orchestration import steps

    counts = steps.ingest(source, source_path, interval_start, interval_end, Path(batch.path))
    batch.metadata.update(counts | {"source": source, "interval": f"{interval_start}/{interval_end}"})
