"""The decision at one look: continue, promote the candidate, roll it back, stop with "no difference",
or flag the experiment as broken. Each verdict carries its reason.

The order of the checks is the order of what matters most:
1. Sample ratio. If the exposed shoppers do not match the configured shares, assignment or logging
   is broken. Nothing the arms show can be trusted, so the run decides nothing. The chi-square test
   runs at every look, so its level, 0.001 over the whole run, is split over the hourly looks the
   run may take. At a single 0.001 per look, 1% of sound simulated runs were flagged.
2. Guardrails on the candidate arm: p99 latency, the share of requests its model failed (answered by
   the control's model instead), empty answers, and its failure rate against the control's. A breach
   rolls the candidate back at this look, whatever the KPI says.
3. The primary KPI's always-valid p-value (`stats.sequential_look`). Below alpha, the sign of the
   difference promotes or rolls back.
4. Past the maximum duration or number of requests: stop, "no difference", `stable` left alone.

For an interleaving arm, the primary KPI is the per-shopper preference: the lists in which the
candidate's team was credited more purchases (or clicks, when the primary is CTR) than the
control's, minus the lists the control's team won, tested against zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from shoprank.evaluation.experiments import stats
from shoprank.evaluation.experiments.config import Experiment
from shoprank.evaluation.experiments.outcomes import ArmOutcome, arm_outcomes, interleaving_credits

SRM_P = 0.001  # over the whole experiment: each look tests at SRM_P / (the hourly looks it may take)
MIN_UNITS = 100  # per arm, before the KPI may decide (the normal approximation needs some shoppers)
ACTIONS = ("continue", "promote", "rollback", "stop", "broken")
_UNIT_METRIC = {"purchases_per_request": ("purchases", "requests"), "revenue_per_request": ("revenue", "requests"),
                "ctr": ("clicks", "impressions")}


@dataclass(frozen=True)
class Verdict:
    action: str
    reason: str
    p_value: float
    difference: float
    interval: tuple[float, float]
    control_value: float
    candidate_value: float
    sample_ratio_p: float
    requests: int
    arms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def guardrail_breaches(experiment: Experiment, control: ArmOutcome, candidate: ArmOutcome) -> list[str]:
    """Every guardrail the candidate arm breaks, said with its value and its limit."""
    limits, found = experiment.guardrails, []
    checks = (("p99_latency_ms", candidate.p99_latency_ms), ("error_rate", candidate.fallback_rate),
              ("empty_answer_rate", candidate.empty_rate),
              ("error_rate_vs_control", candidate.fallback_rate - control.fallback_rate))
    for name, value in checks:
        if name in limits and math.isfinite(value) and value > limits[name]:
            found.append(f"{name} {value:.4g} > {limits[name]:.4g}")
    return found


def decide(experiment: Experiment, requests: pd.DataFrame, events: pd.DataFrame, now: pd.Timestamp,
           previous_p: float = 1.0) -> Verdict:
    """The verdict on `experiment` from its served lists and the events so far (`previous_p`: the
    always-valid p-value of the last look, so it only ever goes down)."""
    outcomes = arm_outcomes(requests, events, [a.name for a in experiment.arms], experiment.attribution_hours)
    credits = None
    if experiment.candidate.interleave is not None:
        credits = interleaving_credits(requests[requests["arm"] == experiment.candidate.name], events,
                                       experiment.attribution_hours)
    hours = (now - pd.Timestamp(experiment.started_at)).total_seconds() / 3600
    return judge(experiment, outcomes, credits, hours, previous_p)


def judge(experiment: Experiment, outcomes: Mapping[str, ArmOutcome], credits: pd.DataFrame | None,
          hours: float, previous_p: float = 1.0) -> Verdict:
    """The decision procedure on the arms' per-shopper sums (and, for an interleaving arm, its
    per-shopper team credits), `hours` into the experiment. `decide` feeds it from the logs;
    `make bench-experiments` from the simulator."""
    arms = [a.name for a in experiment.arms]
    control, candidate = outcomes[experiment.control], outcomes[experiment.candidate.name]
    n_requests = int(sum(o.requests for o in outcomes.values()))
    summary = {a: o.totals() for a, o in outcomes.items()}
    srm = stats.sample_ratio_p([len(outcomes[a].units) for a in arms], [experiment.arm(a).share for a in arms])

    def verdict(action: str, reason: str, look: stats.SequentialLook | None = None,
                values: tuple[float, float] = (math.nan, math.nan)) -> Verdict:
        return Verdict(action, reason, look.p_value if look else previous_p, look.difference if look else math.nan,
                       look.interval if look else (-math.inf, math.inf), values[0], values[1], srm, n_requests,
                       summary)

    if srm < SRM_P / max(1, math.ceil(experiment.max_hours)):
        shares = {a: len(outcomes[a].units) for a in arms}
        return verdict("broken", f"sample ratio mismatch: exposed shoppers {shares} against shares "
                                 f"{ {a.name: a.share for a in experiment.arms} } (p = {srm:.2g})")
    breaches = guardrail_breaches(experiment, control, candidate) if candidate.requests else []
    if breaches:
        return verdict("rollback", "guardrail breached: " + "; ".join(breaches))
    if credits is not None:
        look, values, units = _interleaved_look(experiment, credits, previous_p)
    else:
        look, values, units = _ab_look(experiment, control, candidate, previous_p)
    if look is not None and units >= MIN_UNITS and look.p_value < experiment.alpha:
        better = look.difference > 0
        return verdict("promote" if better else "rollback",
                       f"{experiment.primary} {'higher' if better else 'lower'} for {experiment.candidate.name}: "
                       f"difference {look.difference:+.4g} (always-valid p = {look.p_value:.3g} < {experiment.alpha})",
                       look, values)
    p_now = look.p_value if look else previous_p
    if hours >= experiment.max_hours or n_requests >= experiment.max_requests:
        limit = f"{hours:.1f} h of {experiment.max_hours:g}" if hours >= experiment.max_hours \
            else f"{n_requests:,} requests of {experiment.max_requests:,}"
        return verdict("stop", f"no difference after {limit} (p = {p_now:.3g})", look, values)
    return verdict("continue", f"no verdict yet ({n_requests:,} requests, p = {p_now:.3g})", look, values)


def _ab_look(experiment: Experiment, control: ArmOutcome, candidate: ArmOutcome,
             previous_p: float) -> tuple[stats.SequentialLook | None, tuple[float, float], int]:
    numerator, denominator = _UNIT_METRIC[experiment.primary]
    a = stats.ratio(control.units[numerator], control.units[denominator])
    b = stats.ratio(candidate.units[numerator], candidate.units[denominator])
    units = min(a.units, b.units)
    if not (math.isfinite(a.variance) and math.isfinite(b.variance)):
        return None, (a.value, b.value), units
    look = stats.sequential_look(b.value - a.value, a.variance + b.variance, a.value, experiment.expected_lift,
                                 experiment.alpha, previous_p)
    return look, (a.value, b.value), units


def _interleaved_look(experiment: Experiment, credits: pd.DataFrame,
                      previous_p: float) -> tuple[stats.SequentialLook | None, tuple[float, float], int]:
    """Team b is the candidate (`interleave: [control label, candidate label]`)."""
    kind = "click" if experiment.primary == "ctr" else "purchase"
    a, b = credits[f"{kind}_wins_a"].to_numpy(), credits[f"{kind}_wins_b"].to_numpy()
    if len(a) < 2:
        return None, (float(a.sum()), float(b.sum())), len(a)
    mean, variance = stats.mean_estimate(b - a)
    scale = float(np.mean(a + b)) / 2 if len(a) else 0.0
    look = stats.sequential_look(mean, variance, scale, max(experiment.expected_lift, 0.05), experiment.alpha,
                                 previous_p)
    return look, (float(a.sum()), float(b.sum())), len(a)
