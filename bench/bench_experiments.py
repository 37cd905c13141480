"""`make bench-experiments`: the experiment decision procedure, run many times against simulated
shoppers with a known truth, as an A/B test and as team-draft interleaving.

    .venv/bin/python -m bench.bench_experiments [--runs 100] [--effect 0.05]

A full night per experiment is too slow for hundreds of runs, so the shoppers are simulated.
- The taste model is the closed-loop bench's (`bench_loop.Taste`): the synthetic shop's own
  generating rule.
- A million shoppers, a few requests each over a run, as in a day of a large shop. Each has one of
  20,000 candidate pools of 40 items: 30 from the pool's categories, drawn by appeal, and 10 from
  anywhere.
- A ranker orders them by log taste plus its own Gaussian noise, drawn afresh per request. Less
  noise is a better ranker.
- A shopper looks down the 10 shown items and clicks with probability taste x 1 / log2(position + 1).
  A click buys with probability `BUY_GIVEN_CLICK` x taste x the shopper's intent.
- Intent is drawn per shopper from a Gamma with shape `INTENT_SHAPE` and mean 1. Most shoppers
  rarely buy and a few buy a lot, as in a real shop. This spread between shoppers is what an A/B test
  must average out, and what an interleaved list cancels: its two teams meet the same intent.
- Shoppers return with a heavy-tailed frequency, so some shoppers make many requests (what makes
  per-shopper analysis necessary).

The candidate rankers' noise is calibrated first, by Monte Carlo, to be truly better or worse than
the control by `--effect` in purchases per request. The A/A candidate is the control itself.

Each run is one experiment:
- the shoppers are split by the real assignment (`config.assign`, 50/50), relabelled per run;
- requests come in "hours" of `LOOK_EVERY` requests (per design);
- after each hour the real decision procedure (`decision.judge`: sample-ratio check, guardrails,
  mSPRT always-valid p-value) looks at the per-shopper sums so far;
- it stops at its first verdict, or at `MAX_REQUESTS` (per design) with "no difference".

The A/B run serves each arm its own ranker. The interleaving run serves the team-draft list of both
rankers to its arm. Its primary KPI is, per shopper, the lists the candidate's team won on purchases
minus the lists the control's team won.

Not simulated here (the unit tests and the end-to-end test cover them): the join of served lists and
events, purchase attribution windows, latency and errors.

Output: bench/results/experiments.json and experiments.png; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.bench_loop import BUY_GIVEN_CLICK, Taste
from shoprank.evaluation.experiments.config import Experiment, assign, parse_experiment
from shoprank.evaluation.experiments.decision import judge
from shoprank.evaluation.experiments.interleaving import team_draft
from shoprank.evaluation.experiments.outcomes import UNIT_COLUMNS, ArmOutcome

RESULTS = Path(__file__).with_name("results")
K = 10
POOL_IN, POOL_OUT = 30, 10
CONTROL_NOISE = 1.0
# Per design: requests per look ("an hour" of the simulated shop) and the run's maximum, past which it
# stops with "no difference": several times the requests the design's verdicts take at the 90th
# percentile (measured with larger maxima first), so a true effect is rarely cut off.
LOOK_EVERY = {"ab": 25_000, "interleave": 5_000}
MAX_REQUESTS = {"ab": 1_000_000, "interleave": 300_000}
INTENT_SHAPE = 0.5  # Gamma shape of the shoppers' purchase intent (mean 1, coefficient of variation 1.4)
PROFILES = 20_000  # candidate pools drawn from the taste model; shopper n has pool n mod PROFILES
SHOPPERS = 1_000_000  # a few requests each over a run, as in a day of a large shop
EXAMINE = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass
class Shop:
    """The candidate pools (taste and price per candidate), and per shopper: their pool, their intent
    and how often they return."""

    taste: np.ndarray  # (profiles, pool)
    price: np.ndarray
    profile: np.ndarray  # (shoppers,): the row of `taste` and `price` a shopper's requests use
    intent: np.ndarray  # (shoppers,): how readily each shopper buys what they click
    visit_weight: np.ndarray

    @property
    def n(self) -> int:
        return len(self.profile)

    @classmethod
    def build(cls, seed: int) -> Shop:
        from shoprank.data.sources.synthetic import SyntheticSource

        source = SyntheticSource()
        taste = Taste(source)
        rng = np.random.default_rng(seed)
        pools_taste, pools_price = [], []
        for user in (f"u{n}" for n in range(PROFILES)):
            own = [i for c in sorted(taste.categories(user)) for i in taste.in_category(c)]
            weights = np.array([taste.appeal[i] for i in own])
            picked = list(rng.choice(own, size=min(POOL_IN, len(own)), replace=False, p=weights / weights.sum()))
            picked += list(rng.choice(taste.items, size=POOL_OUT, replace=False))
            pools_taste.append([taste(user, i) for i in picked])
            pools_price.append([taste.price[i] for i in picked])
        width = max(len(p) for p in pools_taste)
        pad = [p + [1e-6] * (width - len(p)) for p in pools_taste]
        prices = [p + [0.0] * (width - len(p)) for p in pools_price]
        visits = rng.pareto(2.0, SHOPPERS) + 1.0  # heavy-tailed return frequency (Lomax, shape 2)
        intent = rng.gamma(INTENT_SHAPE, 1 / INTENT_SHAPE, SHOPPERS)
        profile = np.arange(SHOPPERS) % PROFILES
        return cls(np.array(pad), np.array(prices), profile, intent, visits / visits.sum())


def rankings(shop: Shop, who: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Each request's top K candidate indices under a ranker with `noise`."""
    scores = np.log(shop.taste[shop.profile[who]]) + noise * rng.standard_normal((len(who), shop.taste.shape[1]))
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def outcomes_of(shop: Shop, who: np.ndarray, shown: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per request and position: clicked, bought (by the taste model), and the revenue."""
    taste = np.take_along_axis(shop.taste[shop.profile[who]], shown, axis=1)
    clicked = rng.random(taste.shape) < taste * EXAMINE
    bought = clicked & (rng.random(taste.shape) < BUY_GIVEN_CLICK * taste * shop.intent[who][:, None])
    revenue = bought * np.take_along_axis(shop.price[shop.profile[who]], shown, axis=1)
    return clicked, bought, revenue


def purchases_per_request(shop: Shop, noise: float, seed: int, n: int = 400_000) -> float:
    rng = np.random.default_rng(seed)
    who = rng.choice(shop.n, size=n, p=shop.visit_weight)
    _, bought, _ = outcomes_of(shop, who, rankings(shop, who, noise, rng), rng)
    return float(bought.sum() / n)


def calibrate(shop: Shop, target: float, seed: int) -> float:
    """The noise whose purchases per request are `target` x the control's (bisection on the noise)."""
    base = purchases_per_request(shop, CONTROL_NOISE, seed)
    lo, hi = (0.0, CONTROL_NOISE) if target > 1 else (CONTROL_NOISE, 8.0)
    for _ in range(18):
        mid = (lo + hi) / 2
        ratio = purchases_per_request(shop, mid, seed) / base
        if ratio > target:  # better than wanted: more noise
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class Sums:
    """Per-shopper running sums of one arm (the `UNIT_COLUMNS`)."""

    def __init__(self, n: int) -> None:
        self.values = {c: np.zeros(n) for c in UNIT_COLUMNS}
        self.requests = 0

    def add(self, who: np.ndarray, clicked: np.ndarray, bought: np.ndarray, revenue: np.ndarray) -> None:
        n = len(self.values["requests"])
        self.requests += len(who)
        for column, per_request in (("requests", np.ones(len(who))), ("impressions", np.full(len(who), K)),
                                    ("clicks", clicked.sum(1)), ("purchases", bought.sum(1)),
                                    ("revenue", revenue.sum(1)), ("no_click_requests", ~clicked.any(1))):
            self.values[column] += np.bincount(who, weights=per_request.astype(float), minlength=n)

    def outcome(self, arm: str) -> ArmOutcome:
        seen = self.values["requests"] > 0
        units = pd.DataFrame({c: v[seen] for c, v in self.values.items()}, index=np.flatnonzero(seen))
        return ArmOutcome(arm, units, self.requests, 0.0, 0.0, float("nan"))


def experiment(design: str) -> Experiment:
    candidate = {"name": "candidate", "share": 0.5, "label": "canary"} if design == "ab" else \
        {"name": "candidate", "share": 0.5, "interleave": ["stable", "canary"]}
    return parse_experiment({"name": f"bench-{design}", "route": "recommend", "salt": f"bench-{design}",
                             "arms": [{"name": "control", "share": 0.5, "label": "stable"}, candidate],
                             "control": "control", "started_at": "2026-01-01T00:00:00+00:00",
                             "max_hours": MAX_REQUESTS[design] / LOOK_EVERY[design],  # a look is an hour
                             "max_requests": MAX_REQUESTS[design]})


def assignment(design: str) -> np.ndarray:
    """Each shopper's arm under the design's experiment (True: the candidate), by the real hash.
    Hashing a million pseudonyms per run would dominate the bench, so each run relabels the shoppers
    instead (`run_once`): the same split sizes, and a fresh draw of which shoppers (which intent,
    which visit frequency) land in each arm, as a new salt would give."""
    config = experiment(design)
    return np.array([assign(config, f"shopper-{n}").name == "candidate" for n in range(SHOPPERS)])


def run_once(shop: Shop, arm_of: np.ndarray, design: str, noise: float, seed: int) -> dict:
    """One experiment until its verdict: (action, requests counted, looks)."""
    config = experiment(design)
    rng = np.random.default_rng(seed)
    arm_of = arm_of[rng.permutation(shop.n)]
    sums = {"control": Sums(shop.n), "candidate": Sums(shop.n)}
    credits = np.zeros((shop.n, 2))
    previous_p, looks, verdict = 1.0, 0, None
    while True:
        who = rng.choice(shop.n, size=LOOK_EVERY[design], p=shop.visit_weight)
        treated = arm_of[who]
        control_who = who[~treated]
        clicked, bought, revenue = outcomes_of(shop, control_who, rankings(shop, control_who, CONTROL_NOISE, rng), rng)
        sums["control"].add(control_who, clicked, bought, revenue)
        cand_who = who[treated]
        if design == "ab":
            shown = rankings(shop, cand_who, noise, rng)
            clicked, bought, revenue = outcomes_of(shop, cand_who, shown, rng)
        else:
            first, second = rankings(shop, cand_who, CONTROL_NOISE, rng), rankings(shop, cand_who, noise, rng)
            shown, teams = np.empty_like(first), np.empty(first.shape, dtype=np.int8)
            for row in range(len(cand_who)):
                items, team = team_draft(first[row].tolist(), second[row].tolist(), K, rng)
                shown[row], teams[row] = items, [t == "b" for t in team]
            clicked, bought, revenue = outcomes_of(shop, cand_who, shown, rng)
            to_a, to_b = (bought & (teams == 0)).sum(1), (bought & (teams == 1)).sum(1)
            credits[:, 0] += np.bincount(cand_who, weights=(to_a > to_b).astype(float), minlength=shop.n)
            credits[:, 1] += np.bincount(cand_who, weights=(to_b > to_a).astype(float), minlength=shop.n)
        sums["candidate"].add(cand_who, clicked, bought, revenue)
        looks += 1
        outcomes = {arm: s.outcome(arm) for arm, s in sums.items()}
        credit_frame = None
        if design == "interleave":
            seen = sums["candidate"].values["requests"] > 0
            credit_frame = pd.DataFrame({"purchase_wins_a": credits[seen, 0], "purchase_wins_b": credits[seen, 1]})
        verdict = judge(config, outcomes, credit_frame, hours=looks, previous_p=previous_p)
        previous_p = verdict.p_value
        if verdict.action != "continue":
            break
    counted = sums["candidate"].requests + (sums["control"].requests if design == "ab" else 0)
    return {"action": verdict.action, "requests": counted, "all_requests": verdict.requests, "looks": looks,
            "p_value": verdict.p_value}


_SHARED: dict = {}


def _share(shop: Shop, arms: dict[str, np.ndarray]) -> None:
    _SHARED.update(shop=shop, arms=arms)


def _run(job: tuple) -> dict:
    design, noise, seed = job
    return run_once(_SHARED["shop"], _SHARED["arms"][design], design, noise, seed)


def summarise(runs: list[dict], truth: str) -> dict:
    actions = pd.Series([r["action"] for r in runs])
    correct = {"better": "promote", "worse": "rollback", "same": "stop"}[truth]
    decided = [r["requests"] for r in runs if r["action"] == correct]
    every = [r["requests"] for r in runs]  # a run that hit its maximum counts its maximum: a lower bound
    return {"runs": len(runs), "correct_share": float((actions == correct).mean()),
            "requests_median_all_runs": float(np.median(every)),
            "false_promotion_share": float((actions == "promote").mean()) if truth != "better" else None,
            "actions": actions.value_counts().to_dict(),
            "requests_to_decide_median": float(np.median(decided)) if decided else None,
            "requests_to_decide_p90": float(np.percentile(decided, 90)) if decided else None}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    truths = ["better", "worse", "same"]
    for offset, design in ((-0.2, "ab"), (0.2, "interleave")):
        cells = result["designs"][design]
        axes[0].bar(np.arange(3) + offset, [cells[t]["correct_share"] for t in truths], width=0.4,
                    label="A/B" if design == "ab" else "interleaving")
        medians = [cells[t]["requests_to_decide_median"] or np.nan for t in truths[:2]]
        axes[1].bar(np.arange(2) + offset, medians, width=0.4, label="A/B" if design == "ab" else "interleaving")
    axes[0].set_xticks(range(3), ["better canary", "worse canary", "A/A"])
    axes[0].axhline(0.95, color="grey", linestyle=":")
    axes[0].set_ylabel("share of correct decisions")
    axes[1].set_xticks(range(2), ["better canary", "worse canary"])
    axes[1].set_yscale("log")
    axes[1].set_ylabel("requests to a correct verdict (median)")
    for ax in axes:
        ax.legend()
    fig.suptitle(f"{result['runs_per_cell']} simulated experiments per bar, true effect "
                 f"±{result['effect']:.0%} purchases per request")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="experiments per design and truth")
    parser.add_argument("--effect", type=float, default=0.05, help="the true relative effect on purchases/request")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes running experiments side by side")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    shop = Shop.build(args.seed)
    noise = {"better": calibrate(shop, 1 + args.effect, args.seed),
             "worse": calibrate(shop, 1 - args.effect, args.seed), "same": CONTROL_NOISE}
    measured = {t: purchases_per_request(shop, n, args.seed + 1) for t, n in noise.items()}
    arms = {design: assignment(design) for design in ("ab", "interleave")}
    print(f"rankers' noise {noise}; purchases/request {measured}")
    designs: dict[str, dict] = {}
    for design in ("ab", "interleave"):
        designs[design] = {}
        for truth in ("better", "worse", "same"):
            jobs = [(design, noise[truth], args.seed * 100_000 + r) for r in range(args.runs)]
            with multiprocessing.get_context("fork").Pool(args.workers, initializer=_share,
                                                          initargs=(shop, arms)) as pool:
                runs = list(tqdm(pool.imap(_run, jobs), total=len(jobs), desc=f"{design} {truth}", unit="run"))
            designs[design][truth] = summarise(runs, truth)
            print(design, truth, json.dumps(designs[design][truth]))
    # medians over every run, a run stopped at its maximum counted at it (so a ratio is a lower bound
    # where A/B's median run hit its maximum)
    ratio = {t: designs["ab"][t]["requests_median_all_runs"] / designs["interleave"][t]["requests_median_all_runs"]
             for t in ("better", "worse")}
    result = {"effect": args.effect, "workers": args.workers, "runs_per_cell": args.runs,
              "look_every_requests": LOOK_EVERY,
              "max_requests": MAX_REQUESTS, "shoppers": SHOPPERS, "profiles": PROFILES, "intent_shape": INTENT_SHAPE,
              "alpha": experiment("ab").alpha,
              "expected_lift": experiment("ab").expected_lift, "noise": noise,
              "purchases_per_request": measured, "designs": designs, "ab_over_interleaving_requests": ratio,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "experiments.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "experiments.png")
    print(json.dumps({"ab_over_interleaving_requests": ratio, "seconds": result["seconds"]}))
    if not math.isfinite(sum(ratio.values()) if ratio else float("nan")):
        print("no ratio: one design reached no correct verdict")


if __name__ == "__main__":
    main()
