"""Merge the Predict calls of concurrent requests in one API worker into fewer RPCs.

Why: on this hardware a gRPC call costs about a millisecond of CPU on each side whatever its size,
and one call of the ranker costs about as much again before the first row; a few hundred candidate
rows more cost little. So when requests overlap, one RPC with all their rows is cheaper than one
each, for the API and for the model server alike.

No request waits for company: with fewer than `max_in_flight` RPCs outstanding (default one per
worker) a request is sent at once; only requests that arrive while that many are outstanding
queue, and they go together, in one RPC, as soon as one comes back. At low load nothing changes;
under load the calls merge. Requests are merged only with others that send the same inputs (the
same signature), and each gets back its own rows, in order, with the version that answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from shoprank.serving.model_server.client import Prediction

Send = Callable[[dict[str, np.ndarray]], Awaitable[Prediction]]


@dataclass
class _Waiting:
    inputs: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future


class Coalescer:
    def __init__(self, send: Send, max_in_flight: int = 1, max_rows: int = 4096) -> None:
        self.send = send
        self.max_in_flight = max_in_flight
        self.max_rows = max_rows
        self.in_flight = 0
        self.queue: deque[_Waiting] = deque()
        self.rpcs = 0
        self.requests = 0

    async def predict(self, inputs: dict[str, np.ndarray]) -> Prediction:
        rows = len(next(iter(inputs.values()))) if inputs else 0
        waiting = _Waiting(inputs, rows, asyncio.get_running_loop().create_future())
        self.queue.append(waiting)
        self.requests += 1
        if self.in_flight < self.max_in_flight:
            self._flush()
        return await waiting.future

    def _flush(self) -> None:
        batch = [self.queue.popleft()]
        keys = tuple(batch[0].inputs)
        rows = batch[0].rows
        while self.queue and tuple(self.queue[0].inputs) == keys and rows + self.queue[0].rows <= self.max_rows:
            rows += self.queue[0].rows
            batch.append(self.queue.popleft())
        self.in_flight += 1
        self.rpcs += 1
        asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            if len(batch) == 1:
                merged = batch[0].inputs
            else:
                merged = {k: np.concatenate([w.inputs[k] for w in batch]) for k in batch[0].inputs}
            prediction = await self.send(merged)
            cuts = np.cumsum([w.rows for w in batch])[:-1]
            parts = {k: np.split(v, cuts) for k, v in prediction.outputs.items()}
            for i, waiting in enumerate(batch):
                if not waiting.future.done():
                    waiting.future.set_result(Prediction({k: v[i] for k, v in parts.items()}, prediction.version))
        except BaseException as err:  # every waiting request learns why, none hangs
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(err)
            if not isinstance(err, Exception):
                raise
        finally:
            self.in_flight -= 1
            if self.queue and self.in_flight < self.max_in_flight:
                self._flush()
