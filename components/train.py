from kfp import dsl

from components import COMPONENT_OPTIONS


@dsl.component(**COMPONENT_OPTIONS)
def train(dataset: dsl.Input[dsl.Dataset], epochs: int, seed: int, search_trials: int, ensemble: int,
          model: dsl.Output[dsl.Model], curves: dsl.Output[dsl.Markdown]):
    """Train the ranker (GPU and mixed precision when the pod has one) and export a SavedModel.

    Trains with `TrainConfig`'s defaults, which are production's: the listwise loss (softmax over each
    user's candidate list), early-stopped on the NDCG@10 inside the validation lists, the ranking the
    blessing metrics score. search_trials > 0 switches on the random hyperparameter search first.
    ensemble > 1 trains that many rankers from different seeds and exports their mean score as one
    model (models/ensemble.py). The run backs itself up under the model base path: the step run
    again after its pod was lost (a spot node) resumes at the last backup. The model's metadata
    records the epochs, the validation metrics, the device and precision, the GPU-hours and their
    estimated cost."""
    import base64
    from pathlib import Path

    from shoprank.models.train import TrainConfig
    from shoprank.orchestration import steps

    report = Path(model.path).with_name("train-report")
    config = TrainConfig(epochs=epochs, seed=seed, ensemble=ensemble)
    result = steps.train(Path(dataset.path), Path(model.path), report, config, search_trials=search_trials,
                         backup_key=steps.training_backup_key(dataset.uri, config))
    model.metadata.update(result)
    png = base64.b64encode((report / "training_curves.png").read_bytes()).decode()
    Path(curves.path).write_text(f"## Training curves\n\n![curves](data:image/png;base64,{png})\n\n{result}\n")
