"""The nightly pipeline: ingest -> validate -> features -> training set -> train -> evaluate ->
(if blessed) infra-validate -> push; beside it, features -> index -> search ranker -> (if blessed)
push of the search ranker. Compiled to `pipelines/nightly.yaml` for the KFP UI; run on
this machine through kfp.local by pipelines.runner.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.evaluate import evaluate
from components.features import features
from components.index import index
from components.infra_validate import infra_validate
from components.ingest import ingest
from components.push import push
from components.search_ranker import search_ranker
from components.train import train
from components.training_set import training_set
from components.validate import validate
from shoprank.orchestration.params import DEFAULTS as P
from shoprank.orchestration.placement import train_placement
from shoprank.settings import load_settings

PIPELINE_NAME = "shoprank-nightly"
COMPILED = Path(__file__).with_name("nightly.yaml")


def place_train(task: dsl.PipelineTask) -> None:
    """The train task's image, resources and GPU node group, from the settings (see
    `shoprank.orchestration.placement`): without the toleration for the GPU nodes' taint, the pod
    asking for a GPU would wait forever on EKS."""
    from kfp import kubernetes

    placed = train_placement(load_settings())
    if placed.image:
        task.set_container_image(placed.image)
    task.set_cpu_limit(placed.cpu).set_memory_limit(placed.memory)
    if placed.gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(placed.gpus)
    if placed.node_selector is not None:
        kubernetes.add_node_selector(task, *placed.node_selector)
    if placed.toleration is not None:
        kubernetes.add_toleration(task, key=placed.toleration.key, operator="Equal", value=placed.toleration.value,
                                  effect=placed.toleration.effect)


def _nightly(
    source: str = P.source,
    source_path: str = P.source_path,
    interval_start: str = P.interval_start,
    interval_end: str = P.interval_end,
    n_snapshots: int = P.n_snapshots,
    max_users_per_cutoff: int = P.max_users_per_cutoff,
    epochs: int = P.epochs,
    seed: int = P.seed,
    search_trials: int = P.search_trials,
    ensemble: int = P.ensemble,
    push_label: str = P.push_label,
    run_key: str = "",
):
    staged = ingest(source=source, source_path=source_path, interval_start=interval_start, interval_end=interval_end)
    gate = validate(batch=staged.outputs["batch"], interval_start=interval_start, interval_end=interval_end)
    feats = features(batch=staged.outputs["batch"], interval_end=interval_end, n_snapshots=n_snapshots)
    feats.after(gate)  # the gate must pass before anything downstream changes
    examples = training_set(interval_end=interval_end, n_snapshots=n_snapshots,
                            max_users_per_cutoff=max_users_per_cutoff, seed=seed,
                            interactions=feats.outputs["interactions"], snapshots=feats.outputs["snapshots"])
    trained = train(dataset=examples.outputs["dataset"], epochs=epochs, seed=seed, search_trials=search_trials,
                    ensemble=ensemble)
    place_train(trained)
    judged = evaluate(model=trained.outputs["model"], dataset=examples.outputs["dataset"],
                      interactions=feats.outputs["interactions"], run_key=run_key)
    with dsl.If(judged.outputs["Output"] == "blessed", name="blessed"):
        served = infra_validate(model=trained.outputs["model"], dataset=examples.outputs["dataset"])
        push(model=served.outputs["validated"], blessing=judged.outputs["blessing"],
             snapshots=feats.outputs["snapshots"], interval_start=interval_start, interval_end=interval_end,
             source=source, label=push_label)
    # search: a fresh index every night (new items are findable by their text), then its ranker
    indexed = index(snapshots=feats.outputs["snapshots"], interval_start=interval_start, interval_end=interval_end)
    searched = search_ranker(search_index=indexed.outputs["search_index"], interactions=feats.outputs["interactions"],
                             queries=feats.outputs["queries"], snapshots=feats.outputs["snapshots"], seed=seed,
                             epochs=epochs)
    with dsl.If(searched.outputs["Output"] == "blessed", name="search-blessed"):
        push(model=searched.outputs["model"], blessing=searched.outputs["blessing"],
             snapshots=feats.outputs["snapshots"], interval_start=interval_start, interval_end=interval_end,
             source=source, label=push_label, model_name="search_ranker").set_display_name("push-search-ranker")


def build() -> dsl.graph_component.GraphComponent:
    """The pipeline, built now: KFP traces the graph when the function is decorated, so the train
    task's placement is read from the settings of this moment."""
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(_nightly)


DESCRIPTION = "Nightly retraining of the shoprank ranker and search ranker."
nightly = build()


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile with the current settings (a cluster's SHOPRANK_TRAIN_* / GPU placement included)."""
    compiler.Compiler().compile(build(), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
