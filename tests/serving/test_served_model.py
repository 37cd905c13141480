"""ServedModel: the version under the label, its signature and card, and the one rule for reading
them again, with a model server whose label moves between requests."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from shoprank.data.served import REQUESTS, served_list
from shoprank.models import CARD_FILE
from shoprank.models.card import ModelCard
from shoprank.serving.api.served_model import ServedModel
from shoprank.serving.model_server.client import ModelServerError, Prediction
from shoprank.storage import LocalStore


class MovingLabel:
    """A model server stand-in: `stable` points at `version`; each version wants its own inputs."""

    def __init__(self, wanted: dict[int, list[str]]) -> None:
        self.wanted = wanted
        self.version = min(wanted)
        self.signature_calls = 0

    async def signature(self, name: str, label: str) -> tuple[int, list[str]]:
        self.signature_calls += 1
        return self.version, self.wanted[self.version]

    async def predict_versioned(self, name: str, inputs: dict, label: str) -> Prediction:
        if set(inputs) != set(self.wanted[self.version]):
            raise ModelServerError(f"v{self.version} wants {self.wanted[self.version]}", "invalid_argument")
        n = len(next(iter(inputs.values())))
        return Prediction({"score": np.full(n, float(self.version))}, self.version)


@pytest.fixture
def models(tmp_path):
    store = LocalStore(tmp_path / "models")
    for version, n_popular in ((1, 10), (2, 50)):
        card = json.dumps({"model": "ranker", "training_set": {"n_popular": n_popular}}).encode()
        store.put_bytes(f"ranker/{version}/{CARD_FILE}", card)
    return store


def test_the_card_of_the_version_that_will_score_is_read_before_scoring(models):
    server = MovingLabel({1: ["a"], 2: ["a"]})
    model = ServedModel("ranker", server, models, log=lambda _: None)

    async def flow():
        version, card = await model.current()
        assert (version, card.training_set["n_popular"]) == (1, 10)
        server.version = 2  # the label moves
        first = await model.predict({"a": np.zeros(3)})  # answered by v2: the next request re-reads
        assert first.version == 2 and model.signature is None
        version, card = await model.current()  # what the next request's candidates are built with
        assert (version, card.training_set["n_popular"]) == (2, 50)

    asyncio.run(flow())


def test_a_version_with_other_inputs_is_retried_once_with_its_signature(models):
    server = MovingLabel({1: ["a"], 2: ["a", "b"]})
    model = ServedModel("ranker", server, models, log=lambda _: None)

    async def flow():
        await model.current()
        server.version = 2
        prediction = await model.predict({"a": np.zeros(2), "b": np.zeros(2)})
        assert prediction.version == 2 and model.signature == (2, ["a", "b"])
        with pytest.raises(ModelServerError, match=r"needs inputs the online path does not compute: \['b'\]"):
            await model.predict({"a": np.zeros(2)})

    asyncio.run(flow())


def test_a_missing_card_is_said_and_the_defaults_are_used(tmp_path):
    said = []
    model = ServedModel("ranker", MovingLabel({7: ["a"]}), LocalStore(tmp_path), log=said.append)
    assert asyncio.run(model.current()) == (7, ModelCard(model="ranker"))
    assert "ranker v7 has no readable model card" in said[0]


def test_the_served_list_constructor_is_the_requests_schema():
    record = served_list("r1", "search", 1.0, None, ["i1"], [0.5], ["lexical"], query="tea")
    assert list(record) == REQUESTS.names
    with pytest.raises(ValueError, match="route must be one of"):
        served_list("r1", "browse", 1.0, None, [], [], [])
    with pytest.raises(ValueError, match="2 items, 1 scores and 2 sources"):
        served_list("r1", "recommend", 1.0, "u", ["a", "b"], [1.0], ["own", "own"])
