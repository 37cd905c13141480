from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def search_ranker(search_index: dsl.Input[dsl.Artifact], interactions: dsl.Input[dsl.Dataset],
                  queries: dsl.Input[dsl.Dataset], snapshots: dsl.Input[dsl.Dataset],
                  catalogue: dsl.Input[dsl.Dataset], seed: int, epochs: int,
                  model: dsl.Output[dsl.Model], metrics: dsl.Output[dsl.Metrics],
                  blessing: dsl.Output[dsl.Artifact]) -> str:
    """Train the search ranker (the search log's queries, or pseudo-queries from purchases where the
    source has none), judge it on the last week's queries against the lexical and own-history
    baselines and the production search ranker, and bless it as the evaluate step blesses the
    recommender: `blessing.metadata["blessed"]`, and "blessed"/"rejected" for the pipeline's condition."""
    from pathlib import Path

    from shoprank.orchestration import steps

    evaluation = steps.train_search(Path(search_index.path), Path(model.path), Path(blessing.path), seed=seed,
                                    epochs=epochs, interactions_path=Path(interactions.path),
                                    queries_path=Path(queries.path), snapshots_dir=Path(snapshots.path),
                                    catalogue_path=Path(catalogue.path))
    model.metadata.update({"name": "search_ranker", **{k: v for k, v in evaluation.facts.items()
                                                       if isinstance(v, (int, float))}})
    return evaluation.record(metrics, blessing)
