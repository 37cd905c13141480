"""The sequence model as an online candidate source, against the real model server: nothing (and no
error) while none is served, then exactly what the exported model answers for the shopper's Feast
sequence plus the live session's carted items."""

import asyncio

import pytest

from shoprank.models import SEQUENCE_MODEL_NAME
from shoprank.models.sequence_input import online_history
from shoprank.serving.api.sequence_source import CACHE_TTL_S, RECHECK_S, SequenceSource
from shoprank.serving.model_server.client import AsyncGrpcClient, RestClient
from shoprank.storage import open_store
from tests.models.test_sequence import shop
from tests.serving.conftest import wait_labelled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from shoprank.models.card import ModelCard
    from shoprank.models.sequence import SequenceConfig, SequenceRecommender, export_sequence_model
    from shoprank.models.sequence_input import history_input
    from shoprank.serving.registry.infra_validate import infra_validate

    config = SequenceConfig(max_len=12, dim=16, blocks=1, heads=2, negatives=16, epochs=2, batch_size=64,
                            min_count=1)
    model = SequenceRecommender(config).fit(shop(200))
    folder = export_sequence_model(model, tmp_path_factory.mktemp("seq") / "m", top_n=8,
                                   card=ModelCard(model=SEQUENCE_MODEL_NAME, parameters=vars(config)))
    infra_validate(folder, SEQUENCE_MODEL_NAME, {"history": history_input([["i1", "i2"], ["i5"]], 12)},
                   output="scores")
    return folder


def test_no_model_gives_no_candidates_then_the_served_models_answer(online_stack, exported):
    from shoprank.models.sequence import ExportedSequenceModel
    from shoprank.serving.registry.push import push_model, wait_until_available

    settings, server = online_stack
    models = open_store(settings.models)
    clock, said = Clock(), []
    row, carted = {"user_item_sequence": ["i3", "i4"]}, ["i6", "i5"]

    async def ask(source: SequenceSource) -> list[str]:
        return await source.next_items(row, carted, 5)

    rest = RestClient(f"http://127.0.0.1:{server.rest_port}")
    expected = ExportedSequenceModel(exported).next_items([online_history(row, carted)])[0][:5]

    async def flow() -> None:  # one event loop: the gRPC channel belongs to it
        source = SequenceSource(AsyncGrpcClient(f"127.0.0.1:{server.grpc_port}", timeout=5.0), models,
                                log=said.append, clock=clock)
        assert await ask(source) == [] and said == []  # not served: nothing, quietly
        push_model(models, exported, SEQUENCE_MODEL_NAME, {},
                   wait_loaded=wait_until_available(rest.status, SEQUENCE_MODEL_NAME, 30))
        wait_labelled(f"http://127.0.0.1:{server.rest_port}", SEQUENCE_MODEL_NAME)
        assert await ask(source) == []  # resting: no model-server call until the recheck
        clock.now += RECHECK_S + 1
        got = await ask(source)
        assert got == expected and len(got) == 5
        assert source.version == 1 and said == []
        # the same history again (another page view): the kept answer, no model call
        calls = source.calls
        assert await ask(source) == expected and (source.calls, source.hits) == (calls, 1)
        assert await source.next_items(row, carted, 3) == expected[:3] and source.calls == calls
        # a carted item changes the history: the model is asked
        moved = ExportedSequenceModel(exported).next_items([online_history(row, [*carted, "i7"])])[0][:5]
        assert await source.next_items(row, [*carted, "i7"], 5) == moved and source.calls == calls + 1
        clock.now += CACHE_TTL_S + 1  # no answer outlives the TTL: a new version would be asked within it
        assert await ask(source) == expected and source.calls == calls + 2

    asyncio.run(flow())


def test_the_kept_answers_stay_bounded_least_recently_used_first_out(monkeypatch):
    import numpy as np

    from shoprank.models.card import ModelCard
    from shoprank.serving.api import sequence_source
    from shoprank.serving.model_server.client import Prediction

    class Model:  # answers each history with its last item: enough to see what was kept
        asked = 0

        async def current(self):
            return 1, ModelCard(model=SEQUENCE_MODEL_NAME, parameters={"max_len": 4})

        async def predict(self, inputs):
            Model.asked += 1
            return Prediction({"items": np.array([[inputs["history"][0, -1].encode()]])}, 1)

    monkeypatch.setattr(sequence_source, "CACHE_SIZE", 2)
    source = SequenceSource(None, None, clock=Clock())
    source.model = Model()

    async def flow():
        for history in (["a"], ["b"], ["a"], ["c"], ["a"], ["b"]):
            assert await source.next_items({"user_item_sequence": history}, [], 1) == history
    asyncio.run(flow())
    # a, b asked; a kept; c asked (b out); a kept; b asked again
    assert (Model.asked, source.hits, len(source._answers)) == (4, 2, 2)
