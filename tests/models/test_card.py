"""The model card: one type written at export and read by serving, and cards of older versions still read."""

import json

import pytest

from shoprank.models import CARD_FILE
from shoprank.models.card import ModelCard
from shoprank.serving.api.recommender import training_settings


def test_a_card_round_trips_through_its_json():
    card = ModelCard(model="ranker", data_cutoffs=["2001-01-01"], parameters={"epochs": 3},
                     training_set={"label_days": 5, "n_popular": 7}, history={"loss": [1.0, 0.5]},
                     precision="mixed_float16", accelerator_hours=0.25, estimated_cost_usd=0.125,
                     resumed_from={"epoch": 2, "batch": 40})
    assert ModelCard.from_json(card.to_json()) == card


def test_an_older_card_reads_with_defaults_and_keeps_its_unknown_keys():
    old = {"model": "ranker", "training_set": {"label_days": 3}, "examples_per_second": 10.0, "retired_key": 1}
    card = ModelCard.from_json(json.dumps(old))
    assert card.training_set == {"label_days": 3} and card.resumed_from is None and card.precision == "float32"
    assert card.notes == {"retired_key": 1}
    assert training_settings(card, log=lambda _: None).label_days == 3  # the online path reads it as before


@pytest.mark.parametrize("text", ["[]", "{}", '{"model": 3}', "null"])
def test_what_is_not_a_card_is_refused_by_name(text):
    with pytest.raises(ValueError, match="model card"):
        ModelCard.from_json(text)


def test_serving_reads_the_card_export_wrote_and_says_when_it_cannot(tiny_model_dir, tmp_path):
    import shutil

    from shoprank.serving.api.served_model import ServedModel
    from shoprank.storage import LocalStore

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "ranker" / "1")
    said: list[str] = []
    served = ServedModel("ranker", client=None, models=LocalStore(tmp_path / "models"), log=said.append)  # type: ignore[arg-type]
    assert served.read_card(1) == ModelCard.from_json((tiny_model_dir / CARD_FILE).read_text())
    assert served.read_card(1).model == "ranker" and not said
    (tmp_path / "models" / "ranker" / "1" / CARD_FILE).write_text("{not json")
    assert served.read_card(1) == ModelCard(model="ranker")
    assert "no readable model card" in said[0]
