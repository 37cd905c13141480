"""The benchmark tables of the docs, generated from `bench/results/*.json` (`make docs`).

    .venv/bin/python -m bench.docs_tables            # rewrite every table block in README.md and docs/*.md
    .venv/bin/python -m bench.docs_tables --check    # write nothing; exit 1 naming each block that differs

Why: figures copied into prose by hand drift away from the runs that produced them. Every figure the
docs give from a benchmark sits in a block between two marker comments,

    <!-- table: serving.latency -->
    ...generated text...
    <!-- /table -->

and this module owns the text in between: a registry maps each table name to the results file it
reads, a function that turns that file's JSON into markdown lines, and the command that reproduces the
file (printed under the table). A bench rerun updates its JSON, `make docs` updates the pages, and
`tests/test_docs.py` fails while a committed page says something the JSON does not.

Where a bench module already renders its results as markdown (`bench_serving.markdown`,
`bench_serving.search_markdown`, `bench_intake.intake_markdown`, `bench_loop.markdown`,
`bench_serving_auth.markdown`, `bench_serving_rules.markdown`) that function is
imported and reused, inside the renderer so that importing this module stays cheap. `bench_search`
is not imported: loading it pulls in the search training stack (seconds), so its table is written
here.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

BLOCK = re.compile(r"(?P<open><!-- table: (?P<name>[A-Za-z0-9_.-]+) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)",
                   re.S)

Json = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """One generated table: the results file it reads, how it renders, and what reproduces the file."""

    source: str  # file name under bench/results (with `declared`: a path in the repository)
    render: Callable[[Json], list[str]]
    command: str | Callable[[Json], str]  # the command that rewrites `source`
    declared: bool = False  # the source is a declaration of the repository (access.json), not a bench result

    def reproduce(self, data: Json) -> str:
        return self.command(data) if callable(self.command) else self.command

    def path(self, results: Path) -> Path:
        return ROOT / self.source if self.declared else results / self.source

    @property
    def source_name(self) -> str:
        return self.source if self.declared else f"bench/results/{self.source}"


# -- formatting ---------------------------------------------------------------------------------------


def _pm(data: Json, metric: str) -> str:
    """`mean ± std` when the runs spread, the mean alone when they agree (deterministic baselines)."""
    std = data.get(f"{metric}_std", 0.0) or 0.0
    return f"{data[metric]:.4f} ± {std:.4f}" if std > 0 else f"{data[metric]:.4f}"


def _gain(model: float, baseline: float) -> str:
    return f"{model / baseline - 1:+.1%}" if baseline else "n/a"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _rate_key(rate: str) -> float:
    return float(rate)


# -- model quality (bench/results/quality.json, quality_run.json) -------------------------------------

QUALITY_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@20")
QUALITY_GOAL = 0.10  # the served model over the best baseline on Recall@20 and NDCG@10 (temporal protocol)
SERVED = "model/served"


def quality_gains(table: Json, metric: str) -> tuple[str, float]:
    """(best baseline on `metric`, the served model's relative gain over it)."""
    baselines = {m: v[metric] for m, v in table.items() if m.startswith("baseline/")}
    best = max(baselines, key=baselines.__getitem__)
    return best, table[SERVED][metric] / baselines[best] - 1 if baselines[best] else math.nan


def quality_table(protocol: str, goal: bool) -> Callable[[Json], list[str]]:
    def render(data: Json) -> list[str]:
        table = data[protocol]
        lines = ["| method | " + " | ".join(QUALITY_METRICS) + " |", "|---|" + "---:|" * len(QUALITY_METRICS)]
        for method, metrics in table.items():
            lines.append(f"| `{method}` | " + " | ".join(_pm(metrics, m) for m in QUALITY_METRICS) + " |")
        lines.append("")
        gains = {metric: quality_gains(table, metric) for metric in ("recall@20", "ndcg@10")}
        said = "; ".join(f"{metric} **{gain:+.1%}** over `{best}`" for metric, (best, gain) in gains.items())
        lines.append(f"`{SERVED}` against the best baseline on each metric: {said}.")
        if goal:
            ok = all(gain >= QUALITY_GOAL for _, gain in gains.values())
            lines.append(f"Goal (at least {QUALITY_GOAL:+.0%} on both): {_met(ok)}.")
        return lines

    return render


def quality_facts(data: Json) -> list[str]:
    lines = ["| protocol | train users | test users | served candidates per user | candidate recall "
             "| ranker examples/s | sequence positions/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for protocol, facts in data["facts"].items():
        split, speed = facts["split"], facts["throughput_examples_per_s"]
        lines.append(f"| {protocol} | {split['train_users']:,} | {split['test_users']:,} "
                     f"| {facts['served_candidates_per_user']:.0f} | {facts['served_candidate_recall']:.3f} "
                     f"| {speed['ranker']:,.0f} | {speed['sequence']:,.0f} |")
    lines += ["", f"Seeds {', '.join(str(s) for s in data['seeds'])}; the whole bench took "
                  f"{data['wall_s'] / 60:.0f} min. Training throughput is on the bench machine's CPUs."]
    return lines


NBR_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "phr@10", "phr@20")


def nbr_table(data: Json) -> list[str]:
    """The Reality Check protocol: every method on this project's preprocessing and, as a cross-check,
    on the repository's published data, mean ± std over the same seeded folds; the counts beside the
    published ones."""
    counts, published = data["counts"]["this_project"], data["counts"]["published_by_the_repository"]
    lines = ["| data | method | " + " | ".join(NBR_METRICS) + " |", "|---|---|" + "---:|" * len(NBR_METRICS)]
    parts = (("this project's", data["this_project"]),
             ("the repository's published", data["published_data_cross_check"]))
    for label, part in parts:
        if not part:
            continue
        for method, result in part["methods"].items():
            summary = result["summary"]
            lines.append(f"| {label} | {method} | " + " | ".join(
                f"{summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in NBR_METRICS) + " |")
    lines += ["", f"This project's preprocessing keeps {counts['users']:,} users and {counts['items']:,} items; the "
                  f"repository's published data has {published['users']:,} and {published['items']:,} (why: "
                  "`why_they_differ` in the JSON). Every figure in the table was computed by this project; "
                  "the TIFUKNN paper's own Ta Feng figures (R@20 "
                  f"{data['reference_only']['TIFUKNN paper (Hu et al., SIGIR 2020), Ta Feng']['recall@20']:.4f}) "
                  "are on another split and are not comparable."]
    for method, result in data["this_project"]["methods"].items():
        gap = result.get("minus_tifuknn_per_fold")
        if gap:
            r20 = gap["recall@20"]
            lines.append(f"\n{method}: R@20 minus TIFUKNN's on the same fold {r20['mean']:+.4f} (each fold between "
                         f"{r20['min']:+.4f} and {r20['max']:+.4f}); its candidates hold "
                         f"{result['candidate_recall']:.1%} of the withheld baskets' items "
                         f"({result['candidates_per_list']:.0f} per list), which caps its recall.")
    return lines


def experiments(data: Json) -> list[str]:
    """Simulated experiments with a known truth: correct decisions, false promotions on A/A, and the
    requests each design needed to reach its correct verdict."""
    lines = ["| design | truth | runs | correct | promoted | rolled back | no difference | requests to decide, "
             "median | p90 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    truths = {"better": f"canary +{data['effect']:.0%}", "worse": f"canary -{data['effect']:.0%}", "same": "A/A"}
    for design, label in (("ab", "A/B 50/50"), ("interleave", "team-draft interleaving")):
        for truth, name in truths.items():
            cell = data["designs"][design][truth]
            actions = cell["actions"]
            median, p90 = cell["requests_to_decide_median"], cell["requests_to_decide_p90"]
            lines.append(f"| {label} | {name} | {cell['runs']} | {cell['correct_share']:.0%} | "
                         f"{actions.get('promote', 0)} | {actions.get('rollback', 0)} | {actions.get('stop', 0)} | "
                         + (f"{median:,.0f} | {p90:,.0f} |" if median is not None else "– | – |"))
    ratio = data["ab_over_interleaving_requests"]
    looks = ", ".join(f"{n:,} requests ({d})" for d, n in data["look_every_requests"].items())
    limits = ", ".join(f"{n:,} ({d})" for d, n in data["max_requests"].items())
    lines += ["", "A/B over interleaving, median requests per run (a run without a verdict counted at its maximum, "
              "so a lower bound where A/B's median run reached it): "
              + ", ".join(f"{truths[t]} {r:.1f}x" for t, r in ratio.items())
              + f". Each run looks every {looks} and stops with no difference at {limits}; alpha {data['alpha']}; "
              f"intent Gamma shape {data['intent_shape']}; {data['shoppers']:,} simulated "
              f"shoppers; purchases per request of the control {data['purchases_per_request']['same']:.4f}, the "
              f"better canary {data['purchases_per_request']['better']:.4f}, the worse "
              f"{data['purchases_per_request']['worse']:.4f}."]
    return lines


def serving_experiments(data: Json) -> list[str]:
    """The interleaved arm against the control in the same open-loop runs."""
    lines = [f"| `/recommend?k=10` at {int(data['rate'])} req/s, one run, 50/50 | p50 ms | p99 ms | model stage p50 ms "
             "| model stage p99 ms |", "|---|---:|---:|---:|---:|"]
    for arm, label in (("control", "control (stable alone)"), ("interleaved", "interleaved (two rankers, team draft)")):
        a = data["arms"][arm]
        lines.append(f"| {label} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | {a['predict_p50_ms']:.2f} | "
                     f"{a['predict_p99_ms']:.2f} |")
    lines += ["", f"Medians of {len(data['rounds'])} rounds. p99 interleaved / control per round: "
              f"{data['p99_ratio_interleaved_to_control_runs']}; model stage p50 per round: "
              f"{data['predict_p50_ratio_runs']}."]
    return lines


def learning_curve(data: Json) -> list[str]:
    """Validation R@20 / NDCG@10 of each model against the users it trained on, mean ± std over seeds."""
    lines = ["| model | users sampled | trained on | training rows | recall@20 | ndcg@10 | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for model, unit in (("ranker", "per cut-off"), ("sequence", "in all")):
        for row in data[model]:
            s = row["summary"]
            sample = "all" if row["sample"] == "all" else f"{row['sample']:,} {unit}"
            rows = f"{s['rows']:,.0f}" if "rows" in s else "–"
            trained = (f"{s['users']:,.0f} lists (≤ {s['users_per_cutoff']:,.0f} per cut-off)" if model == "ranker"
                       else f"{s['users']:,.0f} users")
            lines.append(f"| {model} | {sample} | {trained} | {rows} | "
                         f"{s['recall@20']:.4f} ± {s['recall@20_std']:.4f} | {s['ndcg@10']:.4f} ± "
                         f"{s['ndcg@10_std']:.4f} | {s['train_s']:.0f} |")
    for name, metrics in data.get("baselines", {}).items():
        lines.append(f"| baseline/{name} | | | | {metrics['recall@20']:.4f} | {metrics['ndcg@10']:.4f} | |")
    lines += ["", f"{data['validation_users']:,} validation users, seeds {', '.join(map(str, data['seeds']))}; "
                  f"{data['protocol']}."]
    return lines


def sequence_feature(data: Json) -> list[str]:
    """The ranker with and without the sequence model's score as an input, paired by seed."""
    lines = ["| ranker | recall@20 | ndcg@10 | per seed (recall@20) |", "|---|---:|---:|---|"]
    for arm, label in (("without", "without `seq_score`"), ("with", "with `seq_score`")):
        s = data["summary"][arm]
        seeds = ", ".join(f"{r['recall@20']:.4f}" for r in data["runs"][arm])
        lines.append(f"| {label} | {s['recall@20']:.4f} ± {s['recall@20_std']:.4f} | "
                     f"{s['ndcg@10']:.4f} ± {s['ndcg@10_std']:.4f} | {seeds} |")
    alone = data["sequence_score_alone"]
    lines.append(f"| the candidates ranked by `seq_score` alone | {alone['recall@20']:.4f} | "
                 f"{alone['ndcg@10']:.4f} | |")
    diff = data["paired_difference"]
    lines += ["", "Paired difference (with − without), mean over seeds: "
                  + "; ".join(f"{m} {d['mean']:+.4f} ({d['relative']:+.1%})" for m, d in diff.items())
                  + f". Seeds {', '.join(map(str, data['seeds']))}; {data['protocol']}."]
    return lines


def train_scale(data: Json) -> list[str]:
    """The training set and training, streamed, per sample size at the large shop; the full population."""
    lines = ["| users per cut-off | parts | training rows | training set s | its peak GB | train s | its peak GB | "
             "examples/s | val NDCG@10 |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in data["samples"]:
        if "failed" in p:
            f = p["failed"]
            lines.append(f"| {p['users_per_cutoff']:,} | failed in `{f['step']}` after {f['seconds']:.0f} s at "
                         f"{f['peak_rss_gb']:.1f} GB | | | | | | | |")
            continue
        lines.append(f"| {p['users_per_cutoff']:,} | {p['parts']} | {p['rows']:,} | {p['training_set_s']:.0f} | "
                     f"{p['training_set_rss_gb']:.1f} | {p['train_s']:.0f} | {p['train_rss_gb']:.1f} | "
                     f"{p['examples_per_s']:,.0f} | {p['val_ndcg']:.4f} |")
    every = data.get("all_users")
    if every:
        how = ("measured: the largest sample held every buyer" if every.get("measured")
               else f"extrapolated from {every['basis']}")
        lines += ["", f"Every buyer at every training cut-off: {every['train_lists']:,} lists × "
                      f"{every['rows_per_list']:.0f} rows ≈ {every['train_rows'] / 1e6:,.1f}M rows, "
                      f"{every['epoch_hours_cpu'] * 60:.1f} min per epoch on this machine's CPU at "
                      f"{every['examples_per_s']:,.0f} examples/s ({how})."]
    return lines


# -- serving (bench/results/serving.json) -------------------------------------------------------------

LATENCY_GOAL = (200, 25.0)  # /recommend: p99 <= 25 ms at 200 req/s, 0 errors
SEARCH_GOAL = (100, 30.0)  # /search: p99 <= 30 ms at 100 req/s, 0 errors
INTAKE_GOAL = 5000  # events/s with nothing lost or stored twice
VISIBLE_GOAL_MS = 1000.0  # event-to-visible p99
STAGES_RATE = 100  # the offered rate whose run the benches break down by stage


def _at_rate(by_rate: Json, rate: float) -> Json | None:
    return next((v for k, v in by_rate.items() if float(k) == rate), None)


def serving_latency(data: Json) -> list[str]:
    from bench.bench_serving import markdown

    lines = markdown(data).splitlines()
    rate, limit = LATENCY_GOAL
    at = {store: _at_rate(table, rate) for store, table in data["recommend_by_store"].items()}
    errors = sum(r["errors"] for table in data["recommend_by_store"].values() for r in table.values())
    ok = errors == 0 and all(r is not None and r["p99_ms"] <= limit for r in at.values())
    said = ", ".join(f"{store} {r['p99_ms']:.1f} ms" for store, r in at.items() if r is not None)
    lines += ["", f"Goal (p99 ≤ {limit:.0f} ms at {rate} req/s, 0 errors): {_met(ok)}; p99 at {rate} req/s: "
                  f"{said}; {errors} errors over every rate and store."]
    return lines


def serving_stages(data: Json) -> list[str]:
    stores = list(data["stages_ms_by_store"])
    lines = ["| stage | " + " | ".join(f"{s} p50 ms | {s} p99 ms" for s in stores) + " |",
             "|---|" + "---:|---:|" * len(stores)]
    for stage in data["stages_ms_by_store"][stores[0]]:
        cells = []
        for store in stores:
            s = data["stages_ms_by_store"][store].get(stage)
            cells += [f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}"] if s else ["", ""]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    reads = "; ".join(f"{store} p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"
                      for store, r in data["user_read_ms"].items())
    lines += ["", f"Stages from the API's Server-Timing at {STAGES_RATE} req/s. The user-row read alone, in process: "
                  f"{reads}."]
    return lines


def serving_batching(data: Json) -> list[str]:
    sweep = data["batching"]["sweep"]
    rates = sorted({k for runs in sweep.values() for k in runs}, key=_rate_key)
    lines = ["| configuration | " + " | ".join(f"p99 ms at {float(r):.0f} req/s (each run) | errors"
                                               for r in rates) + " |",
             "|---|" + "---|---:|" * len(rates)]
    for name, runs in sweep.items():
        cells = []
        for rate in rates:
            r = runs[rate]
            each = " / ".join(f"{v:.0f}" for v in r.get("p99_ms_runs", [r["p99_ms"]]))
            cells += [f"{r['p99_ms']:.1f} ({each})", str(r["errors"])]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    chosen = data["batching"]["parameters"]
    params = ", ".join(f"`{k}` {v}" for k, v in chosen.items()) if chosen else "no batching"
    lines += ["", f"Chosen: `{data['batching']['chosen']}` ({params})."]
    return lines


def serving_closed_loop(data: Json) -> list[str]:
    lines = ["| connections | achieved req/s | p50 ms | p99 ms | max ms | errors |", "|---:|---:|---:|---:|---:|---:|"]
    for conns in sorted(data["closed_loop"], key=int):
        r = data["closed_loop"][conns]
        lines.append(f"| {conns} | {r['achieved_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {r['max_ms']:.0f} | {r['errors']} |")
    return lines


def serving_model_server(data: Json) -> list[str]:
    lines = ["| model server configuration | in-process p50 ms | gRPC p50 ms | ratio | candidate rows per call |",
             "|---|---:|---:|---:|---:|"]
    for name, r in data["model_server_overhead"].items():
        lines.append(f"| {name} | {r['in_process_p50_ms']:.2f} | {r['grpc_p50_ms']:.2f} | {r['ratio_p50']:.2f}× "
                     f"| {r['rows_per_request']:.0f} |")
    return lines


def serving_swap(data: Json) -> list[str]:
    swap = data["swap"]
    lines = ["| window | requests | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for name, label in (("during_push", "10 s after the push"), ("during_rollback", "10 s after the rollback")):
        r = swap[name]
        lines.append(f"| {label} | {r['requests']:,} | {r['p50_ms']:.1f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} |")
    lines += ["", f"At {swap['offered_rps']:.0f} req/s for {swap['duration_s']:.0f} s: version {swap['new_version']} "
                  f"pushed at {swap['pushed_at_s']:.0f} s and first served {swap['first_served_by_new_version_s']} s "
                  f"later; `stable` rolled back at {swap['rollback_at_s']:.0f} s and the old version served "
                  f"{swap['first_served_after_rollback_s']} s later. Errors: **{swap['errors']}**; p99 over the "
                  f"whole run {swap['p99_ms']:.0f} ms."]
    return lines


def search_latency(data: Json) -> list[str]:
    from bench.bench_serving import search_markdown

    search = data["search"]
    lines = search_markdown(search).splitlines()
    rate, limit = SEARCH_GOAL
    at = _at_rate(search["by_rate"], rate)
    errors = sum(r["errors"] for r in search["by_rate"].values())
    ok = at is not None and at["p99_ms"] <= limit and errors == 0
    stages = ", ".join(f"{name} {s['p50_ms']:.1f} / {s['p99_ms']:.1f}" for name, s in search["stages_ms"].items())
    mix = ", ".join(f"{share:.0%} {kind}" for kind, share in search["mix"].items())
    served = search.get("known_shoppers_get", "ranker")
    how = ("the search ranker" if served == "ranker"
           else f"the `{served}` rule the night chose over the search ranker (no model call)")
    lines += ["", f"Shoppers: {mix}; known shoppers got {how}.",
              f"Stages at {STAGES_RATE} req/s (p50 / p99 ms, the API's Server-Timing): {stages}.",
              f"Goal (p99 ≤ {limit:.0f} ms at {rate} req/s, 0 errors): {_met(ok)}"
              + (f" ({at['p99_ms']:.1f} ms, {errors} errors)." if at else ".")]
    return lines


def intake(data: Json) -> list[str]:
    from bench.bench_intake import intake_markdown

    part = data["intake"]
    lines = intake_markdown(part).splitlines()
    clean = [r for r in part["by_rate"].values() if r["lost"] == 0 and r["stored_twice"] == 0 and r["errors"] == 0]
    best = max((r["achieved_events_per_s"] for r in clean), default=0.0)
    worst = max((v["p99_ms"] for v in part["event_to_visible"]), default=math.inf)
    lines += ["", f"Goals: intake ≥ {INTAKE_GOAL:,} events/s with nothing lost or stored twice: "
                  f"{_met(best >= INTAKE_GOAL)} ({best:,.0f} events/s at the highest clean rate); event-to-visible "
                  f"p99 ≤ {VISIBLE_GOAL_MS / 1000:.0f} s: {_met(worst <= VISIBLE_GOAL_MS)} (worst p99 {worst:.0f} ms)."]
    return lines


# -- search quality (bench/results/search.json) -------------------------------------------------------

SEARCH_QUALITY_GOAL = {"vs_best_non_personal": 1.2, "vs_own_frequency": 1.1}  # NDCG@10 ratios


def search_quality(data: Json) -> list[str]:
    lines = ["| dataset | method | NDCG@10 | MRR | HR@10 | Recall@50 |", "|---|---|---:|---:|---:|---:|"]
    for name, table in data.items():
        for method, m in table.items():
            if not method.startswith("_"):
                lines.append(f"| {name} | `{method}` | {m['ndcg@10']:.4f} | {m['mrr']:.4f} | {m['hr@10']:.4f} "
                             f"| {m['recall@50']:.4f} |")
    lines.append("")
    goal = (f"≥ {SEARCH_QUALITY_GOAL['vs_best_non_personal']:g}× the best non-personal baseline and "
            f"≥ {SEARCH_QUALITY_GOAL['vs_own_frequency']:g}× own-frequency")
    for name, table in data.items():
        facts = table["_facts"]
        ratio = facts["ndcg@10_ratio"]
        ok = all(ratio[k] >= v for k, v in SEARCH_QUALITY_GOAL.items())
        lines.append(f"- {name}: personalised NDCG@10 = **{ratio['vs_best_non_personal']:.2f}×** the best "
                     f"non-personal baseline, **{ratio['vs_own_frequency']:.2f}×** own-frequency; goal ({goal}) "
                     f"{_met(ok)}. {facts['queries']['test']:,} test queries, {facts['candidates_per_query']:.0f} "
                     f"candidates per query, candidate recall {facts['candidate_recall']:.3f}.")
    return lines


# -- scale (bench/results/scale.json, engines*.json) --------------------------------------------------

SCALE_GOALS = {"minutes": 45.0, "exponent": 1.05, "peak_gb": 8.0}


def _scale_steps(runs: list[Json], key: str) -> list[str]:
    """The steps of every run, in the order they ran (a failed size stops early, so the first full run names them)."""
    steps: list[str] = []
    for run in runs:
        steps += [s for s in run[key] if s not in steps]
        if run.get("failed") and run["failed"]["step"] not in steps:
            steps.append(run["failed"]["step"])
    return steps


def _scale_cell(run: Json, key: str, step: str, digits: int = 1) -> str:
    if step in run[key]:
        return f"{run[key][step]:.{digits}f}"
    failed = run.get("failed") or {}
    if failed.get("step") == step:
        value = failed["seconds"] if key == "steps" else failed["peak_rss_gb"]
        return f"failed ({value:.{digits}f})"
    return "–"


def scale(data: Json) -> list[str]:
    runs = data["runs"]
    steps = _scale_steps(runs, "steps")
    exponent = data["exponent"]
    lines = ["| events | users | items | " + " | ".join(steps) + " | total s | peak RSS GB (step) |",
             "|---:|---:|---:|" + "---:|" * len(steps) + "---:|---|"]
    for run in runs:
        by_step = {**run["peak_rss_gb_by_step"]}
        if run.get("failed"):
            by_step[run["failed"]["step"]] = run["failed"]["peak_rss_gb"]
        peak_step = max(by_step, key=by_step.__getitem__)
        total = f"**{run['total_s']:.0f}**" if run.get("total_s") is not None else "–"
        lines.append(f"| {run['events']:,} | {run['users']:,} | {run['items']:,} | "
                     + " | ".join(_scale_cell(run, "steps", s) for s in steps)
                     + f" | {total} | {run['peak_rss_gb']:.1f} ({peak_step}) |")
    lines.append("| exponent | | | " + " | ".join(f"{exponent[s]:.2f}" if s in exponent else "–" for s in steps)
                 + (f" | {exponent['total']:.2f} | |" if "total" in exponent else " | – | |"))
    failures = [r for r in runs if r.get("failed")]
    for run in failures:
        f = run["failed"]
        lines += ["", f"At {run['events']:,} events `{f['step']}` failed after {f['seconds']:.0f} s at "
                      f"{f['peak_rss_gb']:.1f} GB peak RSS: {f['error'].splitlines()[0]}. "
                      "The steps after it did not run."]
    big = runs[-1]
    fitted = [s for s in steps if s in exponent]
    highest = max(fitted, key=exponent.__getitem__) if fitted else None
    goals = ["", f"Goals, at the largest size ({big['events']:,} events):"]
    if big.get("total_s") is not None:
        goals.append(f"- end to end within {SCALE_GOALS['minutes']:.0f} min: "
                     f"{_met(big['total_s'] / 60 <= SCALE_GOALS['minutes'])} "
                     f"({big['total_s']:.0f} s, {big['total_s'] / 60:.0f} min);")
    else:
        goals.append(f"- end to end within {SCALE_GOALS['minutes']:.0f} min: **not met** "
                     f"(`{big['failed']['step']}` failed);")
    if len(runs) >= 2:
        prev = runs[-2]
        flat = big["peak_rss_gb"] <= prev["peak_rss_gb"] and big["peak_rss_gb"] <= SCALE_GOALS["peak_gb"]
        goals.append(f"- peak memory flat, no higher than at {prev['events']:,} events and ≤ "
                     f"{SCALE_GOALS['peak_gb']:.0f} GB: {_met(flat)} ({big['peak_rss_gb']:.1f} GB against "
                     f"{prev['peak_rss_gb']:.1f} GB);")
    else:
        goals.append(f"- peak memory ≤ {SCALE_GOALS['peak_gb']:.0f} GB: "
                     f"{_met(big['peak_rss_gb'] <= SCALE_GOALS['peak_gb'])} ({big['peak_rss_gb']:.1f} GB);")
    if highest is not None:
        over = [s for s in fitted if exponent[s] > SCALE_GOALS["exponent"]]
        unmeasured = [s for s in steps if s not in big["steps"]]  # a failed size: fitted without it
        goals.append(f"- every step's exponent ≤ {SCALE_GOALS['exponent']}: "
                     f"{_met(not over and not unmeasured)} (highest: {highest} {exponent[highest]:.2f}"
                     + (f"; over: {', '.join(over)}" if over else "")
                     + (f"; not measured at the largest size: {', '.join(unmeasured)}" if unmeasured else "")
                     + (f"; total {exponent['total']:.2f}" if "total" in exponent else "") + ").")
    return lines + goals


def scale_memory(data: Json) -> list[str]:
    runs = data["runs"]
    steps = _scale_steps(runs, "peak_rss_gb_by_step")
    lines = ["| events | " + " | ".join(steps) + " |", "|---:|" + "---:|" * len(steps)]
    for run in runs:
        lines.append(f"| {run['events']:,} | " + " | ".join(_scale_cell(run, "peak_rss_gb_by_step", s) for s in steps)
                     + " |")
    if len(runs) >= 2:
        a, b = runs[-2], runs[-1]
        both = [s for s in steps if s in a["peak_rss_gb_by_step"] and s in b["peak_rss_gb_by_step"]]
        growth = {s: b["peak_rss_gb_by_step"][s] - a["peak_rss_gb_by_step"][s] for s in both}
        growing = sorted((s for s in both if growth[s] > 0.1 * a["peak_rss_gb_by_step"][s]), key=lambda s: -growth[s])
        scale_x = b["events"] / a["events"]
        lines += ["", f"From {a['events']:,} to {b['events']:,} events ({scale_x:.0f}× the events): "
                      + ("; ".join(f"{s} {a['peak_rss_gb_by_step'][s]:.1f} → {b['peak_rss_gb_by_step'][s]:.1f} GB "
                                   f"(+{growth[s]:.1f})" for s in growing) if growing
                         else "no step's peak grows by more than 10%") + "."]
    return lines


def scale_command(data: Json) -> str:
    sizes = " ".join(str(r["events"]) for r in data["runs"])
    return f'`make bench-scale SCALE_ARGS="--events {sizes}"`'


ENGINE_LABELS = {"duckdb": "DuckDB, 4 GB", "duckdb_8gb": "DuckDB, 8 GB", "spark_local2": "Spark `local[2]`"}
ENGINE_TABLES = ("user_stats", "item_stats", "item_neighbours")


def _gb(entry: Json) -> str:
    jvm = max(entry.get("jvm_peak_rss_gb") or [0.0])
    return f"{entry['max_peak_rss_gb']:.1f}" + (f" ({jvm:.1f})" if jvm else "")


def engines(data: Json) -> list[str]:
    """The whole feature job per size and engine: wall seconds, per table, memory, rows; the exponents."""
    lines = ["| events | engine | wall s (× DuckDB) | s per M events | " + " | ".join(f"{t} s" for t in ENGINE_TABLES)
             + " | start s | CPU s | peak RSS GB (JVM) | rows written |",
             "|---:|---|---:|---:|" + "---:|" * len(ENGINE_TABLES) + "---:|---:|---:|---:|"]
    notes = []
    sizes = data["sizes"]
    for size in sizes:
        against = size.get("spark_against")
        duck = size["engines"][against]["median_s"] if against else None
        for name, label in ENGINE_LABELS.items():
            entry = size["engines"].get(name)
            if entry is None:
                continue
            tables = " | ".join(f"{entry['table_s'][t]:.1f}" if t in entry["table_s"] else "–" for t in ENGINE_TABLES)
            rows = f"{sum(entry['rows'].values()):,}"
            cpu = f"{statistics.median(entry['cpu_s']):.0f}"
            if entry["median_s"]:
                wall = f"**{entry['median_s']:.1f}**" + (f" ({entry['median_s'] / duck:.1f}×)" if duck else "")
                per_m = f"{entry['s_per_million_events']:.1f}"
            else:
                ended = "stopped" if entry.get("note", "").startswith("stopped") else "failed"
                wall, per_m = f"{ended} at {entry['seconds_until_stopped']:.0f}", "–"
                notes.append(f"- {label} at {size['events']:,} events: {entry['note']}.")
            lines.append(f"| {size['events']:,} | {label} | {wall} | {per_m} | {tables} | {entry['session_s']:.1f} "
                         f"| {cpu} | {_gb(entry)} | {rows} |")
    exponent = data.get("exponent", {})
    shown = [f"{ENGINE_LABELS[n]} **{e:.2f}**" for n, e in exponent.items() if e is not None]
    shown += [f"{ENGINE_LABELS[n]} above **{e:.2f}** (its time when stopped, so a lower bound)"
              for n, e in data.get("exponent_lower_bound", {}).items()]
    lines += ["", f"Exponent of wall seconds against events ({sizes[0]['events']:,} to {sizes[-1]['events']:,} "
                  f"events; 1 is linear): {', '.join(shown) if shown else 'none (no engine completed two sizes)'}."]
    for size in sizes:
        agreement = size.get("agreement")
        if agreement:
            differing = {f"{t}.{c}": share for t, e in agreement.items()
                         for c, share in e.get("columns_not_all_equal", {}).items()}
            counts = all(e["rows"][0] == e["rows"][1] for e in agreement.values())
            what = ("every column of every row equal" if not differing and counts else
                    ", ".join(f"{k} {v:.2%} of rows equal" for k, v in differing.items())
                    + ("" if counts else "; row counts differ"))
            lines += ["", f"Spark against {ENGINE_LABELS[size['spark_against']]} at {size['events']:,} events, at "
                          f"the last snapshot ({', '.join(agreement)}): {what}."]
    if notes:
        lines += ["", "Runs that did not complete:", "", *notes]
    job = data["job"]
    weekly = ", ".join(t for t in job["tables"] if t != "item_neighbours")
    commits = sorted({c["commit"] for size in sizes for c in (size.get("code"), size.get("code_kept_engines")) if c})
    lines += ["", f"Input: a `make bench-scale` size's nightly crossing (`{sizes[0]['source']}`, ...); the job at "
              f"commit {', '.join(f'`{c}`' for c in commits)}; "
              f"{len(sizes[0]['snapshots'])} weekly snapshots of {weekly}, item_neighbours at the last; "
              f"kNN capped at {job['knn_cap']} buyers per item; {data['machine']['cpus']} cores, shared (the load "
              f"average over each run is in the JSON). Wall s is the run's own process, start (imports, the "
              f"engine or Spark session) included; a table's seconds are summed over the snapshots; CPU s and "
              f"peak RSS are the process tree's, Spark's JVM (in brackets) included."]
    return lines


def engines_tafeng(data: Json) -> list[str]:
    """On Ta Feng: the approximate kNN's recall and time, and the SQL job against the pandas reference."""
    part = data["tafeng"]
    knn = part["knn"]
    exact = knn["exact"]
    lines = [f"| user-kNN, at {part['at'][:10]} | user_stats s | × the exact's | run s | peak RSS GB | recall@50 "
             "| pooled recall@50 | lists identical |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    failed = []
    for cap, entry in sorted(knn.items(), key=lambda kv: -int(kv[0]) if kv[0].isdigit() else -10**9):
        label = "exact" if cap == "exact" else f"cap {cap} buyers per item"
        if not entry.get("completed", True):
            failed.append(f"- {label}: {entry['note']}.")
            lines.append(f"| {label} | did not finish | – | {entry['wall_s']:.1f} | {entry['peak_rss_gb']:.1f} "
                         "| – | – | – |")
            continue
        ratio = entry["user_stats_s"] / exact["user_stats_s"] if exact.get("completed", True) else None
        recall = ("| 1 | 1 | 100% |" if cap == "exact" else
                  f"| **{entry['recall@50']:.3f}** | {entry['pooled_recall@50']:.3f} | {entry['identical_lists']:.0%} |"
                  if "recall@50" in entry else "| – | – | – |")
        lines.append(f"| {label} | {entry['user_stats_s']:.1f} | {f'{ratio:.2f}' if ratio else '–'} "
                     f"| {entry['wall_s']:.1f} | {entry['peak_rss_gb']:.1f} {recall}")
    some = next((e for c, e in knn.items() if c != "exact" and "users" in e), None)
    if some:
        lines += ["", f"Recall@50: the share of a user's exact `user_knn_items` (up to 50) that the capped list "
                      f"holds, averaged over the {some['users']:,} users with an exact list (pooled: over all their "
                      "items). Each run computes item_stats and user_stats at that one snapshot."]
    if failed:
        lines += ["", "Runs that did not finish:", "", *failed]
    versus = part["sql_vs_pandas"]
    lines += ["", f"| at {part['at'][:10]} (user_stats, item_stats) | run s | CPU s | pandas ÷ this | peak RSS GB |",
              "|---|---:|---:|---:|---:|"]
    labels = {"sql_exact_knn": "SQL job on DuckDB, exact kNN", "pandas": "pandas reference (exact kNN)"}
    ratios = versus.get("pandas_over_sql") or {}
    for name, entry in versus.items():
        if not isinstance(entry, dict) or "wall_s" not in entry:
            continue
        label = labels.get(name, f"SQL job on DuckDB, kNN cap {name.rsplit('_', 1)[-1]}")
        cell = f"**{ratios[name]:.1f}×**" if name in ratios else ("1" if name == "pandas" else "–")
        wall = f"{entry['wall_s']:.1f}" if entry.get("completed", True) else f"did not finish ({entry['wall_s']:.0f})"
        lines.append(f"| {label} | {wall} | {entry['cpu_s']:.0f} | {cell} | {entry['peak_rss_gb']:.1f} |")
    agree = versus.get("lists_sql_exact_against_pandas")
    if agree:
        lines += ["", "The SQL's exact lists against pandas' at that snapshot: "
                      + "; ".join(f"`{c}` recall@50 {e['recall@50']:.4f}, identical for {e['identical_lists']:.1%} "
                                  f"of {e['users']:,} users" for c, e in agree.items()) + "."]
    lines += ["", f"Input: {part['source']}, {part['events']:,} events, {part['users']:,} shoppers, "
                  f"{part['items']:,} items; the job at commit `{part['code']['commit']}`. Each run is its own "
                  "process (start and parquet reads included); DuckDB with the 4 GB limit and 2 threads, pandas "
                  "on one."]
    return lines


def engines_command(data: Json) -> str:
    sizes = [s["events_requested"] for s in data.get("sizes", [])]
    if sizes and sizes != [1_000_000, 10_000_000]:
        return f'`make bench-engines ENGINES_ARGS="--events {" ".join(map(str, sizes))}"`'
    return "`make bench-engines` (makes the bench-scale sizes it lacks)"


# -- features, validation, loop -----------------------------------------------------------------------


def materialise(data: Json) -> list[str]:
    lines = ["| online store | writer | view | rows | seconds | rows/s |", "|---|---|---|---:|---:|---:|"]
    arms = (("sqlite", "sqlite", "Feast `materialize`"), ("redis", "redis", "Feast `materialize`"),
            ("redis_loader", "redis", "the fast loader"))
    for arm, store, writer in arms:
        for view, r in data.get(arm, {}).items():
            if isinstance(r, dict):
                lines.append(f"| {store} | {writer} | {view} | {r['rows']:,} | {r['seconds']:.1f} | "
                             f"{r['rows_per_s']:,} |")
    goal = data["goal_rows_per_s"]
    best = data.get("redis_loader", data["redis"])["all"]["rows_per_s"]
    lines += ["", f"Goal ({goal:,} rows/s into Redis): {_met(best >= goal)} ({best:,} rows/s over all views, "
                  f"{best / goal:.0%} of the goal"
                  + (f"; {data['loader_vs_feast']}× Feast's `materialize` in the same session" if "loader_vs_feast"
                     in data else "") + f"). Feast {data['feast']}."]
    if "incremental" in data:
        inc = data["incremental"]
        lines += ["", f"What an incremental write could skip: of the {inc['users_in_both']:,} users in both of the "
                      f"last two snapshots, {inc['changed_share']:.1%} changed (the day counts move for everyone); "
                      f"{inc['new_share']:.1%} of the last snapshot's users are new."]
    return lines


def validation(data: Json) -> list[str]:
    lines = ["| events | gate rows/s | hand-written rows/s | time ratio | peak RSS gate / hand-written |",
             "|---:|---:|---:|---:|---:|"]
    for r in data["results"]:
        gate, hand = r["gate"], r["handwritten"]
        lines.append(f"| {r['events']:,} | {gate['rows_per_s'] / 1000:,.0f}k | {hand['rows_per_s'] / 1000:,.0f}k "
                     f"| {r['time_ratio']:.2f}× | {gate['peak_rss_mb']:.0f} / {hand['peak_rss_mb']:.0f} MB "
                     f"({r['peak_rss_ratio']:.2f}×) |")
    worst = max(r["time_ratio"] for r in data["results"])
    lines += ["", f"Goal ({data['goal']}): {_met(worst <= 3.0)} (worst ratio {worst:.2f}×)."]
    return lines


def loop(data: Json) -> list[str]:
    from bench.bench_loop import markdown

    shop = data["shop"]
    lines = markdown(data).splitlines()
    lines += ["", f"Shop: {shop['n_events']:,} events over {shop['days']} days, {shop['n_users']:,} shoppers, "
                  f"{shop['n_items']:,} items; {data['requests_per_day']:,} requests a day over both arms. "
                  f"`final_gain` {data['final_gain']:+.1%}; goal ({data['goal']}): {_met(bool(data['goal_met']))}."]
    return lines


def loop_ablation(data: Json) -> list[str]:
    ablation = data["ablation"]
    on, off = ablation["with_feedback"], ablation["without_feedback"]
    lines = ["| evaluate metric | with feedback | without | change |", "|---|---:|---:|---:|"]
    for metric in ("recall@10", "recall@20", "ndcg@10", "mrr", "auc"):
        lines.append(f"| {metric} | {on['test'][metric]:.4f} | {off['test'][metric]:.4f} "
                     f"| {_gain(on['test'][metric], off['test'][metric])} |")
    lines += ["", f"Held-out day {ablation['held_out_day']} ({ablation['label_days']}-day labels, "
                  f"{ablation['snapshots']} daily snapshots, one seed); training rows with a shown position: "
                  f"{on['training_set']['shown_rows']:,} with feedback, {off['training_set']['shown_rows']:,} without."]
    estimated = (on.get("off_policy") or {}).get("candidate")
    if estimated and estimated.get("lists"):
        low, high = estimated["ips_minus_logged_95"]
        lines += ["", f"Off-policy estimate of the with-feedback model on the {estimated['lists']:,} served lists "
                      f"never trained on: {estimated['purchases_per_list_logged']:.3f} purchases per list as logged, "
                      f"{estimated['purchases_per_list_ips']:.3f} re-ordered by the model (item-position IPS; "
                      f"difference 95% [{low:+.3f}, {high:+.3f}]; {estimated['clipped_share']:.1%} of weights "
                      f"clipped at {estimated['clip']:g})."]
    return lines


def loop_command(data: Json) -> str:
    shop = data["shop"]
    return (f"`.venv/bin/python bench/bench_loop.py --days {len(data['days']) - 1} --requests "
            f"{data['requests_per_day']} --events {shop['n_events']} --users {shop['n_users']} "
            f"--items {shop['n_items']}` (`make bench-loop` runs the default, larger shop)")


# -- the zone split, from its declarations -----------------------------------------------------------

ZONES_COMMAND = ("`make docs`, after editing `infra/policy/access.json` (Terraform, the zone rules and the local "
                 "enforcement read it too)")


def _node(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def _data_class(prefixes: Json, key: str) -> str:
    """The data class of the longest declared prefix `key` falls under (as `shoprank.zones.data_class`)."""
    return prefixes[max((p for p in prefixes if key.startswith(p)), key=len)]["data"]


def zones_flow(flow: str) -> Callable[[Json], list[str]]:
    """A flow's tasks grouped by zone, and the prefixes each reads and writes, as a mermaid diagram
    (prefixes grouped by the data they may hold), then the same as a table."""

    def render(data: Json) -> list[str]:
        roles, prefixes = data["roles"], data["prefixes"]
        tasks = {name: t for name, t in data["tasks"].items() if t["flow"] == flow}
        used = sorted({p for t in tasks.values() for p in (*t["reads"], *t["writes"])})
        lines = ["```mermaid", "flowchart LR"]
        for zone in ("private", "public"):
            members = [n for n, t in tasks.items() if roles[t["role"]]["zone"] == zone]
            lines.append(f'  subgraph {zone}["{zone} zone"]')
            lines += [f'    {_node(n)}["{n}<br/><small>{tasks[n]["runs_on"]} · {tasks[n]["role"]}</small>"]'
                      for n in members]
            lines.append("  end")
        for data_class in ("raw", "pseudonymised", "none"):
            held = [p for p in used if _data_class(prefixes, p) == data_class]
            if held:
                lines.append(f'  subgraph {data_class}_data["{data_class} data"]')
                lines += [f'    p_{_node(p)}[("{p}")]' for p in held]
                lines.append("  end")
        for name, task in tasks.items():
            lines += [f"  p_{_node(p)} --> {_node(name)}" for p in task["reads"]]
            lines += [f"  {_node(name)} --> p_{_node(p)}" for p in task["writes"]]
        lines += ["```", "", "| task | zone | runs on | role | reads | writes | hands on |",
                  "|---|---|---|---|---|---|---|"]
        for name, task in tasks.items():
            lines.append(f"| {name} | {roles[task['role']]['zone']} | `{task['runs_on']}` | {task['role']} | "
                         f"{', '.join(f'`{p}`' for p in task['reads'])} | {', '.join(f'`{p}`' for p in task['writes'])}"
                         f" | {task['output']} |")
        return lines

    return render


def zones_roles(data: Json) -> list[str]:
    """Each role's zone and grants, by bucket class."""
    lines = ["| role | zone | runs | reads | writes |", "|---|---|---|---|---|"]
    for name, role in data["roles"].items():
        cell = {grant: "; ".join(f"{bucket}: {', '.join(f'`{p}`' for p in prefixes)}"
                                 for bucket, prefixes in role.get(grant, {}).items()) or "–"
                for grant in ("read", "write")}
        lines.append(f"| {name} | {role['zone']} | {role.get('runs', '')} | {cell['read']} | {cell['write']} |")
    return lines


# -- the registry -------------------------------------------------------------------------------------

SERVING = "`make bench-serving` (after `make demo`)"
def serving_api_ab(data: Json) -> list[str]:
    """This checkout's API against a baseline checkout's, interleaved, same stack and rate."""
    lines = [f"`/recommend` at {data['rate']:.0f} req/s, SQLite online store, {data['repeats']} interleaved runs "
             f"of {data['duration_s']:.0f} s per arm:", "",
             "| API | p50 ms | p99 ms (median) | p99 of each run | errors |", "|---|---:|---:|---|---:|"]
    for arm, label in (("baseline", "before (baseline checkout)"), ("current", "this checkout")):
        r = data["arms"][arm]
        runs = ", ".join(f"{v:.1f}" for v in r["p99_ms_runs"])
        lines.append(f"| {label} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {runs} | {r['errors']} |")
    lines += ["", f"Ratio this checkout / before: p50 {data['p50_ratio']:.2f}x, p99 {data['p99_ratio']:.2f}x."]
    return lines


def serving_auth(data: Json) -> list[str]:
    """Shopper tokens and Redis-backed rate limits against an API key naming the shopper, no limits."""
    from bench.bench_serving_auth import markdown

    return markdown(data)


def serving_sequence(data: Json) -> list[str]:
    """/recommend with the sequence source on and off, interleaved."""
    from bench.bench_serving_sequence import markdown

    return [*markdown(data).splitlines(), "", f"The sequence model served: {data['sequence_model']}."]


def serving_rules(data: Json) -> list[str]:
    """/recommend with and without a realistic rule set, interleaved; /similar at the same rate."""
    from bench.bench_serving_rules import markdown

    return markdown(data).splitlines()


TABLES: dict[str, Table] = {
    "quality.temporal": Table("quality.json", quality_table("temporal", goal=True), "`make bench-quality`"),
    "quality.leave_last_out": Table("quality.json", quality_table("leave_last_out", goal=False),
                                    "`make bench-quality`"),
    "quality.facts": Table("quality_run.json", quality_facts, "`make bench-quality`"),
    "quality.nbr": Table("nbr.json", nbr_table, "`make bench-nbr` (also the last part of `make bench-quality`)"),
    "serving.latency": Table("serving.json", serving_latency, SERVING),
    "serving.stages": Table("serving.json", serving_stages, SERVING),
    "serving.batching": Table("serving.json", serving_batching, SERVING),
    "serving.closed_loop": Table("serving.json", serving_closed_loop, SERVING),
    "serving.model_server": Table("serving.json", serving_model_server, SERVING),
    "serving.swap": Table("serving.json", serving_swap, SERVING),
    "serving.api_ab": Table("api_ab.json", serving_api_ab, "`make bench-api-ab BASELINE=../base` (a worktree "
                                                           "of the previous release, after `make demo`)"),
    "serving.auth": Table("serving_auth.json", serving_auth, "`make bench-serving-auth` (after `make demo`)"),
    "serving.sequence": Table("serving_sequence.json", serving_sequence,
                              "`make bench-serving-sequence` (after `make demo`; also part of `make bench-serving`)"),
    "serving.rules": Table("serving_rules.json", serving_rules, "`make bench-serving-rules` (after `make demo`; "
                                                                "also the last part of `make bench-serving`)"),
    "search.latency": Table("serving.json", search_latency,
                            "`.venv/bin/python bench/bench_serving.py --search-only` (after `make demo`; "
                            "also part of `make bench-serving`)"),
    "intake": Table("serving.json", intake,
                    "`.venv/bin/python bench/bench_serving.py --intake-only` (after `make demo`; "
                    "also part of `make bench-serving`)"),
    "search.quality": Table("search.json", search_quality, "`make bench-search`"),
    "experiments": Table("experiments.json", experiments, "`make bench-experiments`"),
    "experiments.latency": Table("serving_experiments.json", serving_experiments,
                                 "`make bench-serving-experiments` (after `make demo`)"),
    "quality.learning_curve": Table("learning_curve.json", learning_curve, "`make bench-learning-curve`"),
    "quality.sequence_feature": Table("sequence_feature.json", sequence_feature, "`make bench-sequence-feature`"),
    "scale.training": Table("train_scale.json", train_scale, "`make bench-train-scale`"),
    "scale": Table("scale.json", scale, scale_command),
    "scale.memory": Table("scale.json", scale_memory, scale_command),
    "engines": Table("engines.json", engines, engines_command),
    "engines.tafeng": Table("engines.json", engines_tafeng, engines_command),
    "materialise": Table("materialise.json", materialise, "`make bench-materialise` (after `make demo`)"),
    "validation": Table("validation.json", validation, "`make bench-validation`"),
    "zones.nightly": Table("infra/policy/access.json", zones_flow("nightly"), ZONES_COMMAND, declared=True),
    "zones.hourly": Table("infra/policy/access.json", zones_flow("hourly"), ZONES_COMMAND, declared=True),
    "zones.roles": Table("infra/policy/access.json", zones_roles, ZONES_COMMAND, declared=True),
    "loop": Table("loop.json", loop, loop_command),
    "loop.ablation": Table("loop.json", loop_ablation, loop_command),
}


# -- pages --------------------------------------------------------------------------------------------


def pages(root: Path = ROOT) -> list[Path]:
    """The pages that may hold table blocks: the README and every docs page."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.exists()]


def block(name: str, results: Path = RESULTS) -> str:
    """The generated text between a table's markers (a blank line, the table, its source and command)."""
    table = TABLES[name]
    data = json.loads(table.path(results).read_text())
    lines = ["", *table.render(data), "",
             f"Source: `{table.source_name}`. Reproduce: {table.reproduce(data)}.", ""]
    return "\n".join(lines) + "\n"


def rewrite(text: str, results: Path = RESULTS) -> tuple[str, list[str], list[str]]:
    """(the text with every block regenerated, the names of blocks that changed, problems)."""
    changed: list[str] = []
    problems: list[str] = []
    cache: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            problems.append(f"unknown table {name!r} (known: {', '.join(TABLES)})")
            return match[0]
        if name not in cache:
            try:
                cache[name] = block(name, results)
            except (OSError, KeyError, ValueError, TypeError) as err:
                problems.append(f"table {name!r} cannot be built from {TABLES[name].source_name}: "
                                f"{type(err).__name__}: {err}")
                return match[0]
        if match["body"] != cache[name]:
            changed.append(name)
        return match["open"] + cache[name] + match["close"]

    return BLOCK.sub(replace, text), changed, problems


def _name(page: Path, root: Path) -> str:
    try:
        return str(page.relative_to(root))
    except ValueError:
        return str(page)


def check(paths: Sequence[Path] | None = None, results: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """One line per page/table whose committed text differs from what the JSON gives (empty: all current)."""
    out: list[str] = []
    for page in paths if paths is not None else pages(root):
        _, changed, problems = rewrite(page.read_text(), results)
        out += [f"{_name(page, root)}: table {name!r} differs from what the results give" for name in changed]
        out += [f"{_name(page, root)}: {problem}" for problem in problems]
    return out


def update(paths: Sequence[Path] | None = None, results: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """Rewrite the blocks of every page; return the pages written (problems raise SystemExit)."""
    written: list[str] = []
    for page in paths if paths is not None else pages(root):
        text = page.read_text()
        new, changed, problems = rewrite(text, results)
        if problems:
            raise SystemExit("\n".join(f"{_name(page, root)}: {p}" for p in problems))
        if new != text:
            page.write_text(new)
            written.append(f"{_name(page, root)} ({', '.join(dict.fromkeys(changed))})")
    return written


def used(paths: Iterable[Path]) -> set[str]:
    """The table names the pages hold blocks for."""
    return {m["name"] for page in paths for m in BLOCK.finditer(page.read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository whose README.md and docs/ to use")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the folder of the results JSON")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(results=args.results, root=args.root)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `make docs` (or fix the page) and commit the result", file=sys.stderr)
        return 1 if problems else 0
    written = update(results=args.results, root=args.root)
    print("\n".join(f"wrote {w}" for w in written) or "every table is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
