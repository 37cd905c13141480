"""The nightly pipeline: ingest -> validate -> features -> training set -> train -> evaluate ->
(if blessed) infra-validate -> push. Compiled to `pipelines/nightly.yaml` for the KFP UI; run on
this machine through kfp.local by shoprank.orchestration.runner.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.evaluate import evaluate
from components.features import features
from components.infra_validate import infra_validate
from components.ingest import ingest
from components.push import push
from components.train import train
from components.training_set import training_set
from components.validate import validate

PIPELINE_NAME = "shoprank-nightly"
COMPILED = Path(__file__).with_name("nightly.yaml")


@dsl.pipeline(name=PIPELINE_NAME, description="Nightly retraining of the shoprank ranker.")
def nightly(
    source: str = "tafeng",
    source_path: str = "",
    interval_start: str = "2000-11-01",
    interval_end: str = "2001-03-01",
    n_snapshots: int = 6,
    max_users_per_cutoff: int = 2000,
    epochs: int = 6,
    seed: int = 0,
    search_trials: int = 0,
    ensemble: int = 3,
    push_label: str = "stable",
):
    staged = ingest(source=source, source_path=source_path, interval_start=interval_start, interval_end=interval_end)
    gate = validate(batch=staged.outputs["batch"], interval_start=interval_start, interval_end=interval_end)
    feats = features(batch=staged.outputs["batch"], interval_end=interval_end, n_snapshots=n_snapshots)
    feats.after(gate)  # the gate must pass before anything downstream changes
    examples = training_set(interval_end=interval_end, n_snapshots=n_snapshots,
                            max_users_per_cutoff=max_users_per_cutoff, features_ready=feats.outputs["stats"])
    trained = train(dataset=examples.outputs["dataset"], epochs=epochs, seed=seed, search_trials=search_trials,
                    ensemble=ensemble)
    trained.set_cpu_limit("8").set_memory_limit("32G").set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    judged = evaluate(model=trained.outputs["model"], dataset=examples.outputs["dataset"])
    with dsl.If(judged.outputs["Output"] == "blessed", name="blessed"):
        served = infra_validate(model=trained.outputs["model"], dataset=examples.outputs["dataset"])
        push(model=served.outputs["validated"], verdict=judged.outputs["verdict"], interval_start=interval_start,
             interval_end=interval_end, source=source, label=push_label)


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(nightly, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
