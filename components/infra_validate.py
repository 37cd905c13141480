from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def infra_validate(model: dsl.Input[dsl.Model], dataset: dsl.Input[dsl.Dataset], validated: dsl.Output[dsl.Model]):
    """Serve the candidate over the TF Serving APIs, compare answers, write warm-up requests."""
    from pathlib import Path

    from shoprank.orchestration import steps

    validated.metadata.update(steps.infra_validate(Path(model.path), Path(dataset.path), Path(validated.path)))
