from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def evaluate(model: dsl.Input[dsl.Model], dataset: dsl.Input[dsl.Dataset], interactions: dsl.Input[dsl.Dataset],
             metrics: dsl.Output[dsl.Metrics], blessing: dsl.Output[dsl.Artifact], run_key: str = "") -> str:
    """Held-out metrics against the baselines and the production model; the blessing.

    The blessing is an artifact, as TFX's ModelBlessing: `metadata["blessed"]` plus the reasons and
    figures (also written to its file); push refuses a model whose blessing says no. The returned
    "blessed"/"rejected" drives the pipeline's condition (kfp.local resolves conditions on a
    component's single `Output` reliably, and the KFP UI shows the word). With `run_key` (the Airflow
    run that started the pipeline) the verdict is also recorded in the store, where the operator that
    submitted the run reads it: KFP's REST API does not return output parameters."""
    from pathlib import Path

    from shoprank.orchestration import steps

    evaluation = steps.evaluate(Path(model.path), Path(dataset.path), interactions_path=Path(interactions.path))
    if run_key:
        steps.record_run_verdict(run_key, evaluation)
    return evaluation.record(metrics, blessing)
