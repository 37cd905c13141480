from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def sequence_model(interactions: dsl.Input[dsl.Dataset], seed: int, epochs: int,
                   model: dsl.Output[dsl.Model], metrics: dsl.Output[dsl.Metrics],
                   blessing: dsl.Output[dsl.Artifact]) -> str:
    """Train the sequence model (a causal transformer over each shopper's items; GPU and mixed
    precision when the pod has one), judge it on the last week's first purchases against popularity
    and the sequence model in production, prove the export serves, and bless it as the evaluate step
    blesses the ranker: `blessing.metadata["blessed"]`, and "blessed"/"rejected" for the pipeline's
    condition. Once pushed, the online path adds its next items to the ranker's candidates."""
    from pathlib import Path

    from shoprank.orchestration.sequence_step import train_sequence

    evaluation = train_sequence(Path(interactions.path), Path(model.path), Path(blessing.path), seed=seed,
                                epochs=epochs)
    model.metadata.update({"name": "sequence", **{k: v for k, v in evaluation.facts.items()
                                                  if isinstance(v, (int, float))}})
    return evaluation.record(metrics, blessing)
