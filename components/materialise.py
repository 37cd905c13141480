from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def materialise(crossing: dsl.Input[dsl.Artifact], online: dsl.Output[dsl.Artifact]):
    """Feast apply and materialise up to the newest snapshot (the key id recorded first).
    `online.metadata["feature_views"]` identifies each view's data (schema hash, materialised up
    to) for the pushed model's lineage."""
    import json
    from pathlib import Path

    from shoprank.orchestration import steps

    result = steps.materialise(Path(crossing.path))
    Path(online.path).write_text(json.dumps(result, indent=2))
    online.metadata.update(result)
