"""The pipeline's train step: plain training, and the switchable hyperparameter search."""

import json

import pandas as pd

from shoprank.models.export import CARD_FILE
from shoprank.models.train import TrainConfig
from shoprank.orchestration import steps
from tests.conftest import tiny_examples


def _dataset(tmp_path):
    frame = pd.concat([tiny_examples(800).assign(split="train"), tiny_examples(300, seed=1).assign(split="validation")])
    out = tmp_path / "dataset"
    out.mkdir()
    frame.to_parquet(out / "examples.parquet", index=False)
    (out / "meta.json").write_text(json.dumps({"cutoffs": ["2001-01-01", "2001-01-08"]}))
    return out


def _card(model_dir):
    return json.loads(next(model_dir.rglob(CARD_FILE)).read_text())


def test_search_trains_the_winner_and_records_every_trial(tmp_path):
    base = TrainConfig(epochs=1, batch_size=128, seed=2)
    result = steps.train(_dataset(tmp_path), tmp_path / "model", tmp_path / "report", base, search_trials=3)
    card = _card(tmp_path / "model")
    trials = card["search_trials"]
    assert len(trials) == 3 and trials[0]["config"] == vars(base)  # the base configuration is tried first
    best = max(trials, key=lambda t: t["val_ndcg"])  # judged by the early-stopping metric
    assert card["parameters"] == best["config"]  # the exported model uses the winning configuration
    assert result["epochs"] >= 1 and (tmp_path / "report" / "training_curves.png").exists()


def test_without_search_the_given_configuration_trains(tmp_path):
    base = TrainConfig(epochs=1, batch_size=128, seed=2)
    result = steps.train(_dataset(tmp_path), tmp_path / "model", tmp_path / "report", base)
    card = _card(tmp_path / "model")
    assert card["search_trials"] == [] and card["parameters"] == vars(base)
    # what the run cost and how it ran, on the card and in the model artifact's metadata alike
    assert card["device"] == result["device"] == "CPU" and card["precision"] == result["precision"] == "float32"
    assert card["accelerator_hours"] == result["accelerator_hours"] == 0.0  # no GPU held
    assert card["estimated_cost_usd"] == 0.0 and card["resumed_from"] is None and result["resumed_from_epoch"] == -1
    assert card["train_seconds"] > 0 and card["examples_per_second"] == result["examples_per_second"] > 0


def test_an_ensemble_run_records_its_members_in_the_card(tmp_path):
    base = TrainConfig(epochs=1, batch_size=128, seed=2, ensemble=2)
    steps.train(_dataset(tmp_path), tmp_path / "model", tmp_path / "report", base)
    card = _card(tmp_path / "model")
    assert card["parameters"]["ensemble"] == 2
    assert [m["seed"] for m in card["ensemble_members"]] == [2, 1002]


def test_a_run_on_a_gpu_records_its_gpu_hours_and_their_price(tmp_path, monkeypatch):
    import tensorflow as tf

    from shoprank.settings import load_settings

    # the strategy and precision of a one-GPU node, on this CPU: what the step records follows from them
    monkeypatch.setattr("shoprank.models.train.distribution",
                        lambda precision="auto": (tf.distribute.get_strategy(), "1x GPU", "float32"))
    settings = load_settings(gpu_hour_usd="2.0")
    result = steps.train(_dataset(tmp_path), tmp_path / "model", tmp_path / "report",
                         TrainConfig(epochs=1, batch_size=128, seed=2), settings=settings)
    card = _card(tmp_path / "model")
    assert card["device"] == "1x GPU" and 0 < card["accelerator_hours"] < 0.5  # wall time x 1 GPU
    assert card["estimated_cost_usd"] == result["estimated_cost_usd"] == 2.0 * card["accelerator_hours"]
