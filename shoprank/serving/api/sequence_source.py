"""The sequence model as the ranker's candidate source online: the shopper's next items.

Why a source that may be absent: the sequence model is pushed by its own step of the nightly, after
its own blessing, so a shop can serve rankers before any sequence model exists (or after it was
rolled back). While no `stable` sequence model answers, the source gives nothing and is asked again
after `RECHECK_S`, so a missing model costs one model-server call per interval, not one per request;
any other failure (timeout, a server restarting) also gives nothing for that request and is logged,
never turned into a failed answer: the other candidate sources still serve.

Why a cache: the model scores the whole catalogue for each history, and a shopper's history changes
only when the night refreshes the Feast row or the session carts an item, while the same shopper asks
for recommendations on every page. Answers are kept per history for `CACHE_TTL_S` (at most
`CACHE_SIZE`, least recently used first out): a page view with an unchanged history costs no model
call, a carted item does, and no answer outlives the TTL, so a new version under the label is asked
within it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from shoprank.features.snapshots import SEQUENCE_ITEMS
from shoprank.models import SEQUENCE_MODEL_NAME
from shoprank.models.sequence_input import history_input, online_history
from shoprank.serving.api.served_model import ServedModel
from shoprank.serving.model_server.client import AsyncGrpcClient, ModelServerError
from shoprank.storage import ObjectStore

RECHECK_S = 30.0
CACHE_TTL_S = 30.0
CACHE_SIZE = 20_000


class SequenceSource:
    def __init__(self, client: AsyncGrpcClient, models: ObjectStore, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = ServedModel(SEQUENCE_MODEL_NAME, client, models, log=log)
        self.log = log
        self.clock = clock
        self._resting_until = 0.0
        self.version: int | None = None  # the version that answered last
        self._answers: OrderedDict[tuple[str, ...], tuple[float, list[str]]] = OrderedDict()
        self.hits = self.calls = 0

    async def next_items(self, row: dict | None, carted: Sequence[str], n: int) -> list[str]:
        """Up to `n` items the served sequence model puts next after the shopper's history (the user
        row's `user_item_sequence` plus the session's carted items); [] when it cannot answer."""
        if n <= 0 or self.clock() < self._resting_until:
            return []
        history = online_history(row, carted)
        if not history:
            return []
        key = tuple(history)
        kept = self._answers.get(key)
        if kept is not None and self.clock() - kept[0] < CACHE_TTL_S:
            self._answers.move_to_end(key)
            self.hits += 1
            return kept[1][:n]
        self.calls += 1
        try:
            _, card = await self.model.current()
            length = int(card.parameters.get("max_len", SEQUENCE_ITEMS))
            prediction = await self.model.predict({"history": history_input([history], length)})
        except ModelServerError as err:
            self._resting_until = self.clock() + RECHECK_S
            self.model.signature = None
            if err.reason != "not_found":
                self.log(f"online path: the sequence model did not answer ({err.reason}: {err}); "
                         f"candidates without it for {RECHECK_S:.0f} s")
            return []
        self.version = prediction.version
        items = [i.decode() if isinstance(i, bytes) else str(i) for i in prediction.outputs["items"].reshape(-1)]
        self._answers[key] = (self.clock(), items)
        self._answers.move_to_end(key)
        while len(self._answers) > CACHE_SIZE:
            self._answers.popitem(last=False)
        return items[:n]
