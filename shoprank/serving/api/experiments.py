"""The experiments an API replica serves, read from the model store and polled.

Every replica must split traffic the same way, and a change (a new canary experiment, a decision
that ends one) must reach them within seconds without a restart. So the document is polled like
the rule set. A document that no longer parses leaves the experiments in hand serving, with the
error kept for the health page. A store that cannot be read does the same. An arm's own rule set
is parsed here, by the decision stage's parser, so a rule set no request could apply refuses the
whole document the same way.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from shoprank.evaluation.experiments.config import (
    EXPERIMENTS_KEY,
    Arm,
    Experiment,
    ExperimentError,
    assign,
    parse_document,
    running,
)
from shoprank.serving.decision.rules import RulesError, RuleSet, parse_rules
from shoprank.storage import ObjectStore


class Chosen(NamedTuple):
    """The experiment a request is in, its arm, and the arm's own rule set (None: the live one)."""

    experiment: Experiment
    arm: Arm
    rules: RuleSet | None = None


def arm_rule_sets(experiments: list[Experiment]) -> dict[tuple[str, str], RuleSet]:
    """(experiment, arm) -> the arm's own rule set, for the arms that have one; ExperimentError naming
    the arm and the rule for a set the decision stage could not apply."""
    out = {}
    for experiment in experiments:
        for arm in experiment.arms:
            if arm.rules is not None:
                document = arm.rules if isinstance(arm.rules, str) else dict(arm.rules)
                try:
                    out[(experiment.name, arm.name)] = parse_rules(document, f"experiment {experiment.name!r} "
                                                                             f"arm {arm.name!r}")
                except RulesError as err:
                    raise ExperimentError(str(err)) from err
    return out


class LiveExperiments:
    def __init__(self, store: ObjectStore, poll_s: float = 5.0) -> None:
        self._store, self.poll_s = store, poll_s
        # swapped as one: a request never sees one document's experiments with another's rule sets
        self._held: tuple[list[Experiment], str | None, dict[tuple[str, str], RuleSet]] = ([], None, {})
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
            rules = arm_rule_sets([e for e in experiments if e.status == "running"])
        except (ExperimentError, OSError) as err:
            self.last_error = f"experiments unreadable, serving the previous: {type(err).__name__}: {err}"
            return False
        self._held, self.last_error = (experiments, token, rules), None
        return True

    def start(self) -> LiveExperiments:
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.refresh()

        threading.Thread(target=loop, name="experiments-refresh", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def arm_for(self, route: str, unit: str | None) -> Chosen | None:
        """The running experiment on `route`, the arm `unit` is in and its rule set; None outside any."""
        experiments, _, rules = self._held
        experiment = running(experiments, route)
        if experiment is None or not unit:
            return None
        arm = assign(experiment, unit)
        return Chosen(experiment, arm, rules.get((experiment.name, arm.name))) if arm is not None else None
