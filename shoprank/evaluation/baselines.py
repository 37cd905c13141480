"""Exact, fast, non-learned recommenders: the bars every model must beat, and the cold-start path.

On grocery data simple frequency baselines are famously hard to beat (Li et al., "A Next Basket
Recommendation Reality Check", TOIS 2023, uses this Ta Feng set), so the project computes them
itself, on the same split and through the same metric code as the models, instead of quoting
numbers from elsewhere. They are deterministic (every tie is broken by a documented rule), need no
training loop, and score the whole Ta Feng test set in seconds; the same objects answer cold-start
users online.

All recommenders follow `Recommender`: `fit(train_events)` then
`recommend(user_ids, k, exclude=None) -> {user: [item, ...]}`. `exclude[u]` items are never
returned (leave-last-out passes the user's history). Users unknown at fit time get the popular list.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

import pandas as pd

from shoprank.data.sources import open_source
from shoprank.evaluation.metrics import DEFAULT_KS, evaluate_rankings, format_table
from shoprank.evaluation.protocols import Split, make_split
from shoprank.features.recommenders import (  # noqa: F401 - the baselines' public names
    Exclude,
    ItemCooccurrence,
    PersonalThenPopular,
    PersonalTopFrequency,
    PopularityRecommender,
    Recommender,
)


def evaluate_recommender(
    recommender: Recommender, split: Split, ks: Sequence[int] = DEFAULT_KS, per_user: bool = False,
) -> dict[str, object]:
    """Fit on `split.train`, rank for `split.test_users` (honouring `split.exclude`), score.

    The one code path for baselines and models alike; returns the metrics, the per-user frame when
    asked, and wall-clock timings of the fit and recommend phases.
    """
    t0 = time.perf_counter()
    recommender.fit(split.train)
    t1 = time.perf_counter()
    rankings = recommender.recommend(split.test_users, max(ks), split.exclude)
    t2 = time.perf_counter()
    out: dict[str, object] = {"fit_s": t1 - t0, "recommend_s": t2 - t1}
    if per_user:
        metrics, frame = evaluate_rankings(rankings, split.truth, ks, n_items=split.n_items, per_user=True)
        out["per_user"] = frame
    else:
        metrics = evaluate_rankings(rankings, split.truth, ks, n_items=split.n_items)
    out["metrics"] = metrics
    out["evaluate_s"] = time.perf_counter() - t2
    return out


def default_baselines(window_days: float | None = 30) -> list[Recommender]:
    """The four baselines of the issue, in the order reports list them."""
    return [
        PopularityRecommender(window_days),
        PersonalTopFrequency(window_days),
        PersonalThenPopular(window_days),
        ItemCooccurrence(window_days=window_days),
    ]


def canonical_purchases(interactions: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's pseudonymised interactions (user_key, no session) as the recommenders read
    events: the purchases, `user_id`, and a basket (`session_id`) = one user's purchases on one day."""
    buys = interactions.loc[interactions["event_type"] == "purchase"]
    return pd.DataFrame({"event_time": buys["event_time"], "user_id": buys["user_key"].astype(str),
                         "item_id": buys["item_id"].astype(str), "event_type": "purchase",
                         "session_id": buys["user_key"].astype(str) + "/" + buys["event_time"].dt.strftime("%F")})


def baselines_at(interactions: pd.DataFrame, as_of: pd.Timestamp, truth: Mapping[str, Collection[str]],
                 ks: Sequence[int] = DEFAULT_KS, n_items: int | None = None) -> dict[str, dict[str, float]]:
    """Every default baseline fitted on the purchases before `as_of`, scored on `truth`.

    The pipeline's evaluate step calls this on its pseudonymised interactions (user_key, no session):
    a basket is a user's purchases on one day, the Ta Feng convention. Same recommenders, same metric
    code as the quality benchmark, so a blessing and the benchmark table cannot disagree on what
    "the baseline" is.
    """
    as_of = pd.Timestamp(as_of)
    times = interactions["event_time"]
    if as_of.tzinfo is None and getattr(times.dt, "tz", None) is not None:
        as_of = as_of.tz_localize("UTC")
    train = canonical_purchases(interactions.loc[times < as_of])
    users = list(truth)
    out = {}
    for model in default_baselines():
        rankings = model.fit(train).recommend(users, max(ks))
        out[model.name] = evaluate_rankings(rankings, truth, ks, n_items=n_items)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """The baseline tables on Ta Feng with timings (the numbers the models must beat).

    `python -c "from shoprank.evaluation.baselines import main; main()" [temporal] [leave_last_out]`
    (not `-m`: the package __init__ imports this module first, which runpy warns about).
    """
    import sys


    protocols = list(argv if argv is not None else sys.argv[1:]) or ["temporal", "leave_last_out"]
    start = time.perf_counter()
    events = pd.concat(open_source("tafeng").events(), ignore_index=True)
    print(f"loaded {len(events):,} events in {time.perf_counter() - start:.1f}s")
    for protocol in protocols:
        start = time.perf_counter()
        split = make_split(protocol, events)
        print(f"\n## {protocol}: split in {time.perf_counter() - start:.1f}s; {split.describe()}")
        table: dict[str, Mapping[str, float]] = {}
        for model in default_baselines():
            result = evaluate_recommender(model, split)
            table[model.name] = result["metrics"]  # type: ignore[assignment]
            print(f"{model.name}: fit {result['fit_s']:.2f}s, recommend {result['recommend_s']:.2f}s, "
                  f"evaluate {result['evaluate_s']:.2f}s")
        print(format_table(table))
