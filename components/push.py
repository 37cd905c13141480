from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def push(model: dsl.Input[dsl.Model], blessing: dsl.Input[dsl.Artifact], crossing: dsl.Input[dsl.Artifact],
         online: dsl.Input[dsl.Artifact], label: str, pushed: dsl.Output[dsl.Model],
         model_name: str = "ranker"):
    """Copy the blessed model into the TF Serving model base path as a new version (TFX's Pusher).

    Refuses a model whose blessing artifact does not say blessed. The pushed-model artifact carries
    where it went (uri, version, label) and its lineage: data interval, metrics, code version and
    the feature view versions it was trained on. `model_name`: the ranker, the search ranker or the sequence model."""
    import json
    from pathlib import Path

    from shoprank.orchestration import steps

    if not blessing.metadata.get("blessed"):
        raise RuntimeError(f"refusing to push: the model is not blessed ({blessing.metadata.get('reasons')})")
    evaluation = json.loads(Path(blessing.path).read_text())
    lineage = {"data_interval": crossing.metadata["interval"], "source": crossing.metadata["source"],
               "crossing": crossing.metadata["manifest"], "metrics": evaluation["candidate"],
               "baselines": evaluation["baselines"], "feature_views": online.metadata.get("feature_views", {})}
    result = steps.push(Path(model.path), lineage, label=label, name=model_name)
    Path(pushed.path).write_text(json.dumps({**result, "lineage": lineage}, indent=2, default=str))
    pushed.metadata.update({**result, "lineage": lineage})  # result["uri"]: the version under the base path
    print(f"pushed {result}")
