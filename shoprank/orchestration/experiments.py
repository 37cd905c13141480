"""The hourly decision on every running experiment, and what it does about it.

Each look reads the experiment's served lists and the events since it started, from the rolled
`served` tables. It decides (`evaluation.experiments.decision`), keeps the look (the always-valid
p-value only goes down across looks), and acts:
- promote: `stable` moves to the candidate through the promotion path
  (`serving.registry.promotions`, logged with this experiment as the actor and the verdict as the
  reason);
- roll back, stop, or broken: the experiment ends and its traffic returns to `stable`, which stays
  where it was;
- continue: nothing.

Every verdict but "continue" is appended to the decision log and sent as an alert. Each look writes
the experiment's report (JSON) and its plot beside it in the model store.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from shoprank.data.served import read_served
from shoprank.evaluation.experiments.config import (
    EXPERIMENT_LOG,
    EXPERIMENT_MODELS,
    Experiment,
    canary_experiment,
    closed,
    read_experiments,
    running,
    write_experiment,
)
from shoprank.evaluation.experiments.decision import Verdict, decide
from shoprank.evaluation.experiments.outcomes import experiment_requests
from shoprank.settings import Settings, load_settings
from shoprank.storage import ObjectStore, open_for

REPORTS = "experiments/reports"
ENDS = {"promote": "promoted", "rollback": "rolled_back", "stop": "stopped", "broken": "broken"}


def looks_key(name: str) -> str:
    return f"{REPORTS}/{name}/looks.jsonl"


def read_looks(store: ObjectStore, name: str) -> list[dict]:
    key = looks_key(name)
    return [json.loads(line) for line in store.get_bytes(key).decode().splitlines() if line.strip()] \
        if store.exists(key) else []


def look_at(experiment: Experiment, served: ObjectStore, models: ObjectStore, now: pd.Timestamp) -> Verdict:
    """Decide on `experiment` from what its shoppers did so far; no action taken."""
    start = pd.Timestamp(experiment.started_at)
    requests = experiment_requests(read_served(served, "requests", start=start.floor("h")), experiment.name)
    events = read_served(served, "events", start=start.floor("h"))
    looks = read_looks(models, experiment.name)
    previous = min((look["p_value"] for look in looks), default=1.0)
    return decide(experiment, requests, events, now, previous)


def _promotion_action(experiment: Experiment) -> tuple[str, int | None]:
    candidate = experiment.candidate
    label = candidate.interleave[1] if candidate.interleave else candidate.label
    if candidate.version is not None:
        return "to_version", candidate.version
    if label == "canary":
        return "to_canary", None
    raise ValueError(f"experiment {experiment.name!r}: its candidate serves label {label!r}; only the canary "
                     "label or a pinned version can be promoted")


def act(experiment: Experiment, verdict: Verdict, settings: Settings, now: datetime) -> dict[str, Any]:
    """Carry out a verdict: promote through the promotion path, end the experiment, log, alert."""
    from shoprank.serving.registry import promotions
    from shoprank.serving.registry.push import server_waiter

    models = open_for(settings, "models")
    record: dict[str, Any] = {"at": now.isoformat(timespec="seconds"), "experiment": experiment.name,
                              "model": experiment.model, "action": verdict.action, "reason": verdict.reason,
                              "p_value": verdict.p_value, "difference": verdict.difference,
                              "interval": list(verdict.interval), "requests": verdict.requests}
    if verdict.action == "continue":
        return record
    if verdict.action == "promote":
        action, version = _promotion_action(experiment)
        chosen = promotions.plan(models, experiment.model, action, version)
        moved = promotions.apply(models, chosen, actor=f"experiment:{experiment.name}", reason=verdict.reason,
                                 wait_loaded=server_waiter(settings.model_server_url, experiment.model))
        record["promotion"] = {k: moved[k] for k in ("from_version", "to_version", "action")}
    write_experiment(models, closed(experiment, ENDS[verdict.action], verdict.reason, now))
    line = json.dumps(record, default=str) + "\n"
    before = models.get_bytes(EXPERIMENT_LOG) if models.exists(EXPERIMENT_LOG) else b""
    models.put_bytes(EXPERIMENT_LOG, before + line.encode())
    from shoprank.orchestration.alerts import deliver  # imports airflow.sdk: only the hourly task needs it

    deliver({"kind": "experiment", "summary": f"experiment {experiment.name}: {verdict.action}: {verdict.reason}",
             **record}, settings)
    return record


def write_report(models: ObjectStore, experiment: Experiment, verdict: Verdict, now: datetime) -> None:
    """The look appended to the experiment's looks, its report and plot rewritten."""
    look = {"at": now.isoformat(timespec="seconds"), "p_value": verdict.p_value, "difference": verdict.difference,
            "interval": list(verdict.interval), "requests": verdict.requests, "action": verdict.action}
    key = looks_key(experiment.name)
    before = models.get_bytes(key) if models.exists(key) else b""
    models.put_bytes(key, before + (json.dumps(look, default=str) + "\n").encode())
    report = {"experiment": experiment.as_dict(), "verdict": asdict(verdict)}
    models.put_bytes(f"{REPORTS}/{experiment.name}/report.json", json.dumps(report, indent=2, default=str).encode())
    models.put_bytes(f"{REPORTS}/{experiment.name}/report.png", plot(experiment, read_looks(models, experiment.name)))


def plot(experiment: Experiment, looks: list[dict]) -> bytes:
    """The difference and its always-valid interval, and the p-value, look by look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    requests = [look["requests"] for look in looks]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    diff = [look["difference"] for look in looks]
    low = [max(look["interval"][0], -1e6) for look in looks]
    high = [min(look["interval"][1], 1e6) for look in looks]
    left.plot(requests, diff, marker="o", label=f"{experiment.primary}: candidate - control")
    left.fill_between(requests, low, high, alpha=0.2, label="always-valid interval")
    left.axhline(0, color="grey", linewidth=0.8)
    left.set_xlabel("requests")
    left.legend(fontsize=8)
    right.plot(requests, [look["p_value"] for look in looks], marker="o")
    right.axhline(experiment.alpha, color="red", linestyle=":", label=f"alpha {experiment.alpha}")
    right.set_yscale("log")
    right.set_xlabel("requests")
    right.set_ylabel("always-valid p")
    right.legend(fontsize=8)
    fig.suptitle(f"{experiment.name} ({experiment.status}): {looks[-1]['action'] if looks else 'no look yet'}")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()


def evaluate_experiments(settings: Settings | None = None, now: datetime | None = None) -> list[dict]:
    """One look at every running experiment, acted on. What the hourly task runs."""
    settings = settings or load_settings()
    now = now or datetime.now(UTC)
    models, served = open_for(settings, "models"), open_for(settings, "served")
    done = []
    for experiment in read_experiments(models):
        if experiment.status != "running":
            continue
        verdict = look_at(experiment, served, models, pd.Timestamp(now))
        write_report(models, experiment, verdict, now)
        done.append(act(experiment, verdict, settings, now))
    return done


def start_experiment(models: ObjectStore, experiment: Experiment) -> list[Experiment]:
    """Publish `experiment` for every replica, refused whole (ExperimentError, nothing written) if an
    arm's own rule set would not parse in the API or another experiment runs on its route."""
    from shoprank.serving.api.experiments import arm_rule_sets

    arm_rule_sets([experiment])
    return write_experiment(models, experiment)


def start_canary_experiment(settings: Settings, model: str, version: int, now: datetime | None = None) -> dict | None:
    """What a push to `canary` starts: `settings.canary_share` of the route's shoppers on the canary for
    `settings.canary_hours`. A running experiment on the route ends first ("stopped": the canary it
    measured is replaced). The ranker's canary runs on /recommend, the search ranker's on /search;
    other models (the sequence model, a candidate source) have no route of their own to split."""
    if settings.canary_share <= 0 or model not in EXPERIMENT_MODELS:
        return None
    now = now or datetime.now(UTC)
    models = open_for(settings, "models")
    experiment = canary_experiment(model, now, settings.canary_share, settings.canary_hours, version)
    current = running(read_experiments(models), experiment.route)
    if current is not None:
        write_experiment(models, closed(current, "stopped", f"superseded by canary v{version}", now))
    write_experiment(models, experiment)
    return {"experiment": experiment.name, "share": settings.canary_share, "hours": settings.canary_hours}


def credit_share_line(control: float, candidate: float) -> str:
    """The candidate team's share of the interleaved credit, with its 95% interval (binomial)."""
    total = control + candidate
    if not total > 0:
        return "candidate's credit share: no credited purchases yet"
    share = candidate / total
    half = 1.959964 * math.sqrt(share * (1 - share) / total)
    low, high = max(share - half, 0.0), min(share + half, 1.0)
    return f"candidate's credit share {share:.1%} [{low:.1%}, {high:.1%}] of {total:,.0f}"


def status_lines(experiment: Experiment, served: ObjectStore, models: ObjectStore) -> list[str]:
    """What `shoprank experiments status` prints: the arms with their exposure and metrics, the
    difference with its always-valid interval, and the decision with its reason (a look now, no action)."""
    verdict = look_at(experiment, served, models, pd.Timestamp.now(tz="UTC"))
    nan = float("nan")
    lines = [f"{experiment.name} on /{experiment.route} ({experiment.status}, started {experiment.started_at}, "
             f"primary {experiment.primary})"]
    for arm in experiment.arms:
        m = verdict.arms.get(arm.name, {})
        lines.append(f"  {arm.name:<10} {arm.share:>5.0%} {arm.serves:<26} shoppers {m.get('units', 0):>7,.0f}  "
                     f"requests {m.get('requests', 0):>8,.0f}  ctr {m.get('ctr', nan):.4f}  "
                     f"purchases/req {m.get('purchases_per_request', nan):.4f}  "
                     f"revenue/req {m.get('revenue_per_request', nan):.2f}  "
                     f"no click {m.get('no_click_share', nan):.1%}  empty {m.get('empty_rate', nan):.1%}  "
                     f"failed {m.get('fallback_rate', nan):.1%}  "
                     f"p99 {m.get('p99_latency_ms', nan):.0f} ms")
    low, high = verdict.interval
    lines.append(f"  {experiment.primary}: {verdict.control_value:.4g} (control) vs {verdict.candidate_value:.4g}, "
                 f"difference {verdict.difference:+.4g} [{low:+.4g}, {high:+.4g}], "
                 f"always-valid p {verdict.p_value:.3g}, sample ratio p {verdict.sample_ratio_p:.3g}")
    if experiment.candidate.interleave is not None:
        lines.append("  " + credit_share_line(verdict.control_value, verdict.candidate_value))
    if experiment.status == "running":
        lines.append(f"  now: {verdict.action}: {verdict.reason}")
    else:
        lines.append(f"  decided {experiment.decided_at}: {experiment.status}: {experiment.decision}")
    report = f"{REPORTS}/{experiment.name}/report.png"
    if models.exists(report):
        lines.append(f"  plot: {models.uri(report)}")
    return lines
