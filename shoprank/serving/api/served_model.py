"""A model as the online API serves it: the version under the served label, its signature and its
model card, and one rule for when to read them again.

Why one object: the ranker and the search ranker are asked the same way (gRPC, the `stable` label,
coalesced requests), and both must build their candidates and inputs with the settings of the version
that will score them. `current()` is awaited before the candidates are built, so a version's card
is in force from the first request it answers.

The rule: the signature (and card) are read when none is held; when another version answered, the
next request reads them again; a request the served version refuses for its inputs
(`invalid_argument`, `not_found`: the label moved to a version with another signature) is retried
once with the fresh signature.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from shoprank.models import CARD_FILE
from shoprank.models.card import ModelCard
from shoprank.serving import SERVED_LABEL
from shoprank.serving.api.coalesce import Coalescer
from shoprank.serving.model_server.client import AsyncGrpcClient, ModelServerError, Prediction
from shoprank.storage import ObjectStore

RETRY_REASONS = ("invalid_argument", "not_found")


class ServedModel:
    def __init__(self, name: str, client: AsyncGrpcClient, models: ObjectStore, label: str | None = SERVED_LABEL,
                 log: Callable[[str], None] = print, version: int | None = None) -> None:
        self.name = name
        self.label = None if version is not None else label  # a pinned version (an experiment's arm) or a label
        self.version = version
        self.client = client
        self.models = models
        self.log = log
        self.coalescer = Coalescer(
            (lambda inputs: client.predict_versioned(name, inputs, version=version)) if version is not None
            else (lambda inputs: client.predict_versioned(name, inputs, label=label)))
        self.signature: tuple[int, list[str]] | None = None  # (version, input names) last read
        self.card = ModelCard(model=name)

    async def refresh(self) -> tuple[int, list[str]]:
        """Read the served version's signature; its card too when the version is new."""
        signature = await (self.client.signature(self.name, version=self.version) if self.version is not None
                           else self.client.signature(self.name, label=self.label))
        if self.signature is None or signature[0] != self.signature[0]:
            self.card = self.read_card(signature[0])
        self.signature = signature
        return signature

    async def current(self) -> tuple[int, ModelCard]:
        """The version that will score the next request and its card (read if not held)."""
        if self.signature is None:
            await self.refresh()
        return self.signature[0], self.card  # type: ignore[index]

    def read_card(self, version: int) -> ModelCard:
        """The version's model card; an empty one, said aloud, where it cannot be read."""
        try:
            return ModelCard.from_json(self.models.get_bytes(f"{self.name}/{version}/{CARD_FILE}"))
        except (OSError, KeyError, ValueError) as err:
            self.log(f"online path: {self.name} v{version} has no readable model card "
                     f"({type(err).__name__}: {err}); using the defaults")
            return ModelCard(model=self.name)

    async def predict(self, inputs: dict[str, np.ndarray]) -> Prediction:
        """Score with the served version, sending what its signature asks for (see the module's rule)."""
        for attempt in (1, 2):
            version, _ = await self.current()
            wanted = self.signature[1]  # type: ignore[index]
            lacking = [name for name in wanted if name not in inputs]
            if lacking:
                self.signature = None  # read again next time: the label may move back
                raise ModelServerError(f"{self.name} v{version} needs inputs the online path does not compute: "
                                       f"{lacking}", "incompatible_model")
            try:
                prediction = await self.coalescer.predict({n: inputs[n] for n in wanted})
            except ModelServerError as err:
                if err.reason in RETRY_REASONS and attempt == 1:
                    self.signature = None  # the label moved to a version with another signature
                    continue
                raise
            if prediction.version != version:
                self.signature = None
            return prediction
        raise AssertionError("unreachable")
