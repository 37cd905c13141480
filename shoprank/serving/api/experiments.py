"""The experiments an API replica serves, read from the model store and polled.

Every replica must split traffic the same way, and a change (a new canary experiment, a decision
that ends one) must reach them within seconds without a restart. So the document is polled like
the rule set. A document that no longer parses leaves the experiments in hand serving, with the
error kept for the health page. A store that cannot be read does the same.
"""

from __future__ import annotations

import threading

from shoprank.evaluation.experiments.config import (
    EXPERIMENTS_KEY,
    Arm,
    Experiment,
    ExperimentError,
    assign,
    parse_document,
    running,
)
from shoprank.storage import ObjectStore


class LiveExperiments:
    def __init__(self, store: ObjectStore, poll_s: float = 5.0) -> None:
        self._store, self.poll_s = store, poll_s
        self._held: tuple[list[Experiment], str | None] = ([], None)
        self.last_error: str | None = None
        self._stop = threading.Event()

    @property
    def experiments(self) -> list[Experiment]:
        return self._held[0]

    def refresh(self) -> bool:
        """Read the document if it changed; True if what is served changed."""
        try:
            current = self._store.read_versioned(EXPERIMENTS_KEY)
            token = current[1] if current else None
            if token == self._held[1]:
                return False
            experiments = parse_document(current[0]) if current else []
        except (ExperimentError, OSError) as err:
            self.last_error = f"experiments unreadable, serving the previous: {type(err).__name__}: {err}"
            return False
        self._held, self.last_error = (experiments, token), None
        return True

    def start(self) -> LiveExperiments:
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.refresh()

        threading.Thread(target=loop, name="experiments-refresh", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def arm_for(self, route: str, unit: str | None) -> tuple[Experiment, Arm] | None:
        """The running experiment on `route` and the arm `unit` is in; None outside any."""
        experiment = running(self.experiments, route)
        if experiment is None or not unit:
            return None
        arm = assign(experiment, unit)
        return (experiment, arm) if arm is not None else None
