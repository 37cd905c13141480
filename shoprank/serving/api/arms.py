"""An experiment's arm as a route scores it: which model version builds the candidates, which scores
them, and how two rankers make one interleaved list.

One place for `/recommend` and `/search`, so both routes serve an arm the same way: a label or a
pinned version scores alone; `interleave` asks both rankers at once and merges their orders by team
draft, each item remembering its team. An arm's model that fails is answered by `stable` instead,
with the reason kept for the served-list log: a canary that cannot answer costs its shoppers
nothing, and its failures are its error guardrail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shoprank.evaluation.experiments.config import Arm
from shoprank.evaluation.experiments.interleaving import team_draft
from shoprank.models.card import ModelCard
from shoprank.serving import SERVED_LABEL
from shoprank.serving.api.served_model import ServedModel
from shoprank.serving.model_server.client import AsyncGrpcClient, ModelServerError, Prediction
from shoprank.storage import ObjectStore


@dataclass
class ArmScores:
    scores: np.ndarray  # one per candidate; for an interleaved arm, the merged list's order as a score
    version: int  # the version that answered (the first team's, when interleaved)
    teams: dict[str, str] = field(default_factory=dict)  # item -> "a" | "b", interleaved arms only
    fallback: str | None = None  # why `stable` answered instead of the arm's own model


class ArmRankers:
    """The `stable` model one route always serves, and the versions its experiments' arms name."""

    def __init__(self, name: str, client: AsyncGrpcClient, models: ObjectStore,
                 log: Callable[[str], None] = print) -> None:
        self.name, self.client, self.models, self.log = name, client, models, log
        self.stable = ServedModel(name, client, models, log=log)
        self._held: dict[tuple[str | None, int | None], ServedModel] = {}
        self._draw = np.random.default_rng()

    def served(self, label: str | None = SERVED_LABEL, version: int | None = None) -> ServedModel:
        """The model under `label` (or a pinned `version`), created once and kept."""
        if version is None and label == SERVED_LABEL:
            return self.stable
        key = (None if version is not None else label, version)
        if key not in self._held:
            self._held[key] = ServedModel(self.name, self.client, self.models, label=label, log=self.log,
                                          version=version)
        return self._held[key]

    def of(self, arm: Arm | None) -> tuple[ServedModel, ServedModel | None]:
        """(the model whose settings build the candidates, the second ranker of an interleaved arm)."""
        if arm is None:
            return self.stable, None
        if arm.interleave is not None:
            return self.served(arm.interleave[0]), self.served(arm.interleave[1])
        return self.served(arm.label, arm.version), None

    def follows_stable(self, arm: Arm | None) -> bool:
        """Whether the arm is served exactly as everyone outside an experiment is (`stable` alone)."""
        return self.of(arm) == (self.stable, None)

    async def current(self, arm: Arm | None) -> tuple[int, ModelCard, str | None]:
        """(version, card) of the model that builds the arm's candidates, and why `stable`'s are used
        instead (None: the arm's own). `stable` failing is the route's failure, raised."""
        scorer = self.of(arm)[0]
        try:
            version, card = await scorer.current()
            return version, card, None
        except ModelServerError as err:
            if scorer is self.stable:
                raise
            self.log(f"online path: {self.name} arm {arm.name if arm else '?'} failed ({err.reason}): "
                     "stable answers instead")
            version, card = await self.stable.current()
            return version, card, err.reason

    async def scores(self, arm: Arm | None, inputs: dict[str, np.ndarray], items: Sequence[str]) -> ArmScores:
        """Score `items` (the candidates, in input order) as the arm serves them."""
        first, second = self.of(arm)
        try:
            if second is None:
                prediction = await first.predict(inputs)
                return ArmScores(self._checked(prediction, len(items)), prediction.version)
            prediction, other = await asyncio.gather(first.predict(inputs), second.predict(inputs))
            orders = [self._order(items, self._checked(p, len(items))) for p in (prediction, other)]
        except ModelServerError as err:
            if first is self.stable and second is None:
                raise
            self.log(f"online path: {self.name} arm {arm.name if arm else '?'} failed ({err.reason}): "
                     "stable answers instead")
            prediction = await self.stable.predict(inputs)
            return ArmScores(self._checked(prediction, len(items)), prediction.version, fallback=err.reason)
        merged, teams = team_draft(*orders, len(items), self._draw)
        place = {item: n for n, item in enumerate(merged)}
        return ArmScores(np.array([len(merged) - place[i] for i in items], dtype=float), prediction.version,
                         dict(zip(merged, teams, strict=True)))

    def _checked(self, prediction: Prediction, n: int) -> np.ndarray:
        scores = prediction.outputs["score"].reshape(-1)
        if len(scores) != n:
            raise ModelServerError(f"{self.name} v{prediction.version} returned {len(scores)} scores for {n} "
                                   "candidates", "error")
        return scores

    @staticmethod
    def _order(items: Sequence[str], scores: np.ndarray) -> list[str]:
        """Best first; equal scores by item id, so the order is the same on every replica."""
        return [items[i] for i in np.lexsort((np.asarray(items, dtype=object).astype(str), -scores))]
