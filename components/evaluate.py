from typing import NamedTuple

from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def evaluate(model: dsl.Input[dsl.Model], dataset: dsl.Input[dsl.Dataset], metrics: dsl.Output[dsl.Metrics],
             verdict: dsl.Output[dsl.Artifact]) -> NamedTuple("Outputs", [("blessed", bool)]):
    """Held-out metrics against the popularity baseline and the production model; the blessing."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.evaluate(Path(model.path), Path(dataset.path))
    for key, value in result["candidate"].items():
        metrics.log_metric(key, float(value))
    for key, value in result["baseline/popularity"].items():
        metrics.log_metric(f"popularity_{key}", float(value))
    Path(verdict.path).write_text(json.dumps(result, indent=2, default=str))
    print("\n".join(result["reasons"]))
    return namedtuple("Outputs", ["blessed"])(bool(result["blessed"]))
