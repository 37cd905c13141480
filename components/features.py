from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def features(batch: dsl.Input[dsl.Dataset], interval_end: str, n_snapshots: int, stats: dsl.Output[dsl.Metrics]):
    """Publish the batch, pseudonymise, compute features, feast apply and materialise."""
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.features(Path(batch.path), interval_end, n_snapshots)
    for key, value in result.items():
        if isinstance(value, (int, float)):
            stats.log_metric(key, value)
