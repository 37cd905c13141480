"""The nightly pipeline, the public half of a night: receive the private stage's crossing ->
snapshots -> neighbours -> materialise -> training set -> train -> evaluate -> (if blessed)
infra-validate -> push; beside it, snapshots -> index -> search ranker -> (if blessed) push of
the search ranker, and the sequence model -> (if blessed) its push. Its one data input is the
crossing's manifest key: ingest, the gate, publishing and pseudonymisation ran before it in the
private zone (`shoprank.orchestration.private`), so no argument and no artifact under the pipeline
root holds a raw id, a session id or unscrubbed text.

Compiled to `pipelines/nightly.yaml` for the KFP UI; run on this machine through kfp.local by
pipelines.runner.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.evaluate import evaluate
from components.index import index
from components.infra_validate import infra_validate
from components.materialise import materialise
from components.neighbours import neighbours
from components.push import push
from components.receive import receive
from components.search_ranker import search_ranker
from components.sequence_model import sequence_model
from components.snapshots import snapshots
from components.train import train
from components.training_set import training_set
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


def fresh(component):
    """The component, its task never served from KFP's cache: a night's steps have side effects
    (the online store, the model versions, the index) and their inputs are a new crossing each night."""

    def task(**arguments):
        return component(**arguments).set_caching_options(False)

    return task


def _nightly(
    crossing_key: str,
    max_users_per_cutoff: int = P.max_users_per_cutoff,
    epochs: int = P.epochs,
    sequence_epochs: int = P.sequence_epochs,
    seed: int = P.seed,
    search_trials: int = P.search_trials,
    ensemble: int = P.ensemble,
    push_label: str = P.push_label,
    run_key: str = "",
):
    handed = fresh(receive)(crossing_key=crossing_key)
    crossing, interactions = handed.outputs["crossing"], handed.outputs["interactions"]
    catalogue = handed.outputs["catalogue"]
    snapped = fresh(snapshots)(crossing=crossing, interactions=interactions, catalogue=catalogue)
    snaps = snapped.outputs["snapshots"]
    aggregates = fresh(neighbours)(crossing=crossing, snapshots=snaps, catalogue=catalogue)
    # after the aggregates: the API sees the new popular list together with the new rows
    online = fresh(materialise)(crossing=crossing).after(snapped, aggregates)
    examples = fresh(training_set)(max_users_per_cutoff=max_users_per_cutoff, seed=seed, crossing=crossing,
                                   interactions=interactions, impressions=handed.outputs["impressions"],
                                   snapshots=snaps, online=online.outputs["online"])
    dataset = examples.outputs["dataset"]
    trained = fresh(train)(dataset=dataset, epochs=epochs, seed=seed, search_trials=search_trials, ensemble=ensemble)
    place_train(trained)
    judged = fresh(evaluate)(model=trained.outputs["model"], dataset=dataset, interactions=interactions,
                             run_key=run_key)
    with dsl.If(judged.outputs["Output"] == "blessed", name="blessed"):
        served = fresh(infra_validate)(model=trained.outputs["model"], dataset=dataset)
        fresh(push)(model=served.outputs["validated"], blessing=judged.outputs["blessing"], crossing=crossing,
                    online=online.outputs["online"], label=push_label)
    # search: a fresh index every night (new items are findable by their text), then its ranker
    indexed = fresh(index)(crossing=crossing, snapshots=snaps, catalogue=catalogue)
    searched = fresh(search_ranker)(search_index=indexed.outputs["search_index"], interactions=interactions,
                                    queries=handed.outputs["queries"], snapshots=snaps, catalogue=catalogue,
                                    seed=seed, epochs=epochs)
    with dsl.If(searched.outputs["Output"] == "blessed", name="search-blessed"):
        fresh(push)(model=searched.outputs["model"], blessing=searched.outputs["blessing"], crossing=crossing,
                    online=online.outputs["online"], label=push_label,
                    model_name="search_ranker").set_display_name("push-search-ranker")
    # the sequence model: a candidate source the online path asks once it is pushed
    sequenced = fresh(sequence_model)(interactions=interactions, seed=seed, epochs=sequence_epochs)
    place_train(sequenced)
    with dsl.If(sequenced.outputs["Output"] == "blessed", name="sequence-blessed"):
        fresh(push)(model=sequenced.outputs["model"], blessing=sequenced.outputs["blessing"], crossing=crossing,
                    online=online.outputs["online"], label=push_label,
                    model_name="sequence").set_display_name("push-sequence")


def build() -> dsl.graph_component.GraphComponent:
    """The pipeline, built now: KFP traces the graph when the function is decorated, so the train
    task's placement is read from the settings of this moment."""
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(_nightly)


DESCRIPTION = "Nightly retraining of the shoprank ranker, search ranker and sequence model."
nightly = build()


def compile_pipeline(path: Path = COMPILED) -> Path:
    """Compile with the current settings (a cluster's SHOPRANK_TRAIN_* / GPU placement included)."""
    compiler.Compiler().compile(build(), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
