from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def push(model: dsl.Input[dsl.Model], verdict: dsl.Input[dsl.Artifact], interval_start: str, interval_end: str,
         source: str, label: str) -> str:
    """Copy the blessed model into the TF Serving model base path as a new version."""
    import json
    from pathlib import Path

    from shoprank.orchestration import steps

    evaluation = json.loads(Path(verdict.path).read_text())
    lineage = {"data_interval": [interval_start, interval_end], "source": source,
               "metrics": evaluation["candidate"], "baselines": evaluation["baselines"]}
    result = steps.push(Path(model.path), lineage, label=label)
    print(f"pushed {result}")
    return result["uri"]
