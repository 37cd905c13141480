"""Server-side request batching with TF Serving's parameters and semantics.

Concurrent Predict calls on one model version are queued, merged along the batch dimension (rows)
into one call of the SavedModel, and the outputs are split back per request. Why: a call into a
SavedModel costs a fixed dispatch overhead plus a part that grows with the rows, and on a busy
2-core machine the fixed part dominates at a few hundred rows per request.

The parameters and their meaning are TF Serving's (`--enable_batching --batching_parameters_file`,
the same text-format file the cluster's TF Serving reads, see `batching/README.md`):
- `max_batch_size`: rows in one merged call at most; a request larger than this runs alone;
- `batch_timeout_micros`: how long the first request of a batch waits for more before it runs;
- `num_batch_threads`: batches that run at the same time;
- `max_enqueued_batches`: queued batches at most; beyond that a request fails at once with
  UNAVAILABLE instead of waiting without bound (TF Serving's "queue is full").
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]
# The parameters `make bench-serving` chose; infra/k8s/base/tf-serving/batching.config holds the same
# (a test keeps the two equal).
DEFAULT_BATCHING_FILE = Path(__file__).with_name("batching.config")


class QueueFull(RuntimeError):
    """The batch queue holds `max_enqueued_batches` batches: shed load instead of queueing forever."""


@dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 1024
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 64
    pad_variable_length_inputs: bool = False  # accepted for file compatibility; inputs here are 1-D

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching parameter {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batching parameter batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")

    def to_text(self) -> str:
        """The TF Serving text-format file for these parameters."""
        lines = [f"{f.name} {{ value: {getattr(self, f.name)} }}" for f in fields(self)
                 if f.name != "pad_variable_length_inputs"]
        return "\n".join([*lines, f"pad_variable_length_inputs: {str(self.pad_variable_length_inputs).lower()}"]) + "\n"


_WRAPPED = re.compile(r"(\w+)\s*\{\s*value\s*:\s*([^\s}]+)\s*\}")
_PLAIN = re.compile(r"(\w+)\s*:\s*([^\s{}]+)")


def parse_batching_parameters(text: str, source: str = "batching parameters") -> BatchingParameters:
    """Read TF Serving's `BatchingParameters` text format (`max_batch_size { value: 128 }` lines)."""
    known = {f.name for f in fields(BatchingParameters)}
    values: dict[str, object] = {}
    body = re.sub(r"#[^\n]*", "", text)
    for pattern in (_WRAPPED, _PLAIN):
        for name, raw in pattern.findall(body):
            if name == "value":
                continue
            if name not in known:
                raise ValueError(f"{source}: unknown field {name!r}; expected one of {sorted(known)}")
            if name == "pad_variable_length_inputs":
                values[name] = raw.lower() == "true"
                continue
            try:
                values[name] = int(raw)
            except ValueError as err:
                raise ValueError(f"{source}: {name} must be an integer, got {raw!r}") from err
        body = pattern.sub("", body)
    if body.strip():
        raise ValueError(f"{source}: cannot read {body.strip()[:60]!r}; "
                         "expected lines like `max_batch_size { value: 128 }`")
    return BatchingParameters(**values)  # type: ignore[arg-type]


def load_batching_parameters(path: str | Path) -> BatchingParameters:
    return parse_batching_parameters(Path(path).read_text(), str(path))


@dataclass
class _Task:
    inputs: Arrays
    rows: int
    future: Future
    enqueued: float


class BatchScheduler:
    """Merges concurrent calls of `run` (one model version's signature) into batched calls."""

    def __init__(self, run: Callable[[Arrays], Arrays], params: BatchingParameters,
                 observe: Callable[[int], None] | None = None) -> None:
        self.run = run
        self.params = params
        self.observe = observe  # called with each merged batch's rows (metrics)
        self._queue: deque[_Task] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(params.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Arrays, timeout: float | None = None) -> Arrays:
        rows = len(next(iter(inputs.values()))) if inputs else 0
        if rows > self.params.max_batch_size or rows == 0:
            return self.run(inputs)  # too large to merge (or nothing to merge): runs on its own
        task = _Task(inputs, rows, Future(), time.monotonic())
        with self._cond:
            if self._closed:  # the version is being unloaded: a request that already holds it still runs
                return self.run(inputs)
            batches = math.ceil((self._queued_rows + rows) / self.params.max_batch_size)
            if batches > self.params.max_enqueued_batches:
                raise QueueFull(f"the batch scheduling queue is full ({self.params.max_enqueued_batches} batches "
                                f"of up to {self.params.max_batch_size} rows waiting)")
            self._queue.append(task)
            self._queued_rows += rows
            self._cond.notify()
        return task.future.result(timeout=timeout)

    def _next_batch(self) -> list[_Task] | None:
        limit, wait_s = self.params.max_batch_size, self.params.batch_timeout_micros / 1e6
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + wait_s
            while self._queued_rows < limit and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
                if not self._queue:  # another batch thread took them
                    return []
            batch, rows = [], 0
            while self._queue and rows + self._queue[0].rows <= limit:
                task = self._queue.popleft()
                rows += task.rows
                batch.append(task)
            self._queued_rows -= rows
            return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            try:
                if len(batch) == 1:
                    outputs = [self.run(batch[0].inputs)]
                else:
                    merged = {k: np.concatenate([t.inputs[k] for t in batch]) for k in batch[0].inputs}
                    whole = self.run(merged)
                    cuts = np.cumsum([t.rows for t in batch])[:-1]
                    outputs = [dict(zip(whole, parts, strict=True))
                               for parts in zip(*(np.split(v, cuts) for v in whole.values()), strict=True)]
                if self.observe is not None:
                    self.observe(sum(t.rows for t in batch))
                for task, out in zip(batch, outputs, strict=True):
                    task.future.set_result(out)
            except BaseException as err:  # every waiting request learns why, none hangs
                for task in batch:
                    if not task.future.done():
                        task.future.set_exception(err)

    def close(self) -> None:
        """Finish what is queued, then stop the threads (used when a version is unloaded)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
