from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def features(batch: dsl.Input[dsl.Dataset], interval_end: str, n_snapshots: int,
             interactions: dsl.Output[dsl.Dataset], snapshots: dsl.Output[dsl.Dataset],
             queries: dsl.Output[dsl.Dataset], stats: dsl.Output[dsl.Metrics]):
    """Publish the batch, pseudonymise, compute features, feast apply and materialise.

    Outputs what the next steps read: the pseudonymised interactions (labels, baselines) and the
    snapshots (candidates), the search log (pseudonymised, query text scrubbed);
    `snapshots.metadata["feature_views"]` identifies the Feast views' data (schema hash, materialised
    up to) for the pushed model's lineage."""
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.features(Path(batch.path), interval_end, n_snapshots, interactions_out=Path(interactions.path),
                            snapshots_out=Path(snapshots.path), queries_out=Path(queries.path))
    interactions.metadata.update({"rows": result["interactions"], "pseudonymised": True})
    queries.metadata.update({"queries": result["search_queries"], "pseudonymised": True, "scrubbed": True})
    snapshots.metadata.update({"snapshots": result["snapshots"], "feature_views": result["feature_views"],
                               "user_rows": result["user_rows"], "item_rows": result["item_rows"]})
    for key, value in result.items():
        if isinstance(value, (int, float)):
            stats.log_metric(key, value)
