"""The search ranker's examples, baselines and evaluation: one query = one candidate list.

Each query is answered as the API answers it (`features.search_candidates` on the index), and its
candidates get the features the API computes: the user's and items' Feast rows as of the latest
snapshot at or before the query (point-in-time: a snapshot only sees events before its time), the
derived user x item features and the query match features. Labels are the query's relevant items.

The baselines rank the whole match set through the same metric code as the model:
- `bm25`: BM25 alone (ties in index order, i.e. by item id);
- `bm25_popularity`: BM25, ties by popularity (the lexical stage the ranker starts from);
- `own_frequency`: the user's own purchase count within the match, then popularity.
"""

from __future__ import annotations

# TensorFlow (models.*) is imported inside the functions that train or score: the baselines, the
# candidate frames and the metrics run without it (the API and the benches import this module).
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoprank.evaluation.metrics import evaluate_rankings
from shoprank.features.derived import add_model_features, model_inputs
from shoprank.search.features import SEARCH_FEATURES, list_columns, query_columns, search_candidates
from shoprank.search.index import SearchIndex
from shoprank.search.queries import sample_queries
from shoprank.search.rules import own_frequency_order
from shoprank.search.text import query_tokens

KS = (10, 50)
METRICS = ("ndcg@10", "mrr", "hr@10", "recall@50")
USER_LIST_COLUMNS = ("user_top_items", "user_top_item_counts")


class NotEnoughQueries(ValueError):
    """The search log has no queries to train on or none to judge on: the night trains no search
    ranker (and says so) rather than failing the whole pipeline."""


@dataclass
class SearchConfig:
    lexical_n: int = 100  # lexical candidates per query (plus the user's own matching items)
    max_train_queries: int = 20_000
    max_eval_queries: int = 5_000
    validation_share: float = 0.15
    seed: int = 0
    # train on the queries of the last weeks before the test period only: shoppers' histories and the
    # season then look like the test period's (on Ta Feng, December histories are 5 weeks long)
    train_weeks: int | None = 4


def snapshot_for(times: pd.Series, snapshots: Sequence[pd.Timestamp]) -> pd.Series:
    """The latest snapshot at or before each time (NaT before the first)."""
    snaps = pd.DatetimeIndex(sorted(pd.Timestamp(s) for s in snapshots))
    pos = snaps.searchsorted(pd.DatetimeIndex(times), side="right") - 1
    values = np.where(pos >= 0, snaps.asi8[np.maximum(pos, 0)], np.iinfo(np.int64).min)
    return pd.Series(pd.to_datetime(values, utc=True).where(pos >= 0), index=times.index)


def _user_rows(user_stats: pd.DataFrame, keys: pd.DataFrame) -> dict[tuple[str, pd.Timestamp], dict]:
    wanted = user_stats.merge(keys.drop_duplicates(), on=["user_key", "event_timestamp"], how="inner")
    cols = [c for c in USER_LIST_COLUMNS if c in wanted]
    return {(u, t): dict(zip(cols, vals, strict=True))
            for u, t, *vals in wanted[["user_key", "event_timestamp", *cols]].itertuples(index=False)}


def candidate_frame(queries: pd.DataFrame, index: SearchIndex, user_stats: pd.DataFrame,
                    snapshots: Sequence[pd.Timestamp], config: SearchConfig,
                    progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """One row per (query, candidate) with label, relevance and the query match features.

    `queries`: rows of (query_id, user_key, event_time, query, item_id, relevance). Queries before the
    first snapshot (no features yet) are dropped."""
    heads = queries.drop_duplicates("query_id")[["query_id", "user_key", "event_time", "query"]].copy()
    heads["event_timestamp"] = snapshot_for(heads["event_time"], snapshots)
    heads = heads[heads["event_timestamp"].notna()]
    users = _user_rows(user_stats, heads[["user_key", "event_timestamp"]])
    relevant = queries.groupby("query_id").apply(
        lambda g: dict(zip(g["item_id"].astype(str), g["relevance"], strict=True)), include_groups=False).to_dict()
    parts: list[pd.DataFrame] = []
    for n, (qid, user_key, at, text) in enumerate(heads[["query_id", "user_key", "event_timestamp", "query"]]
                                                  .itertuples(index=False)):
        toks = query_tokens(text)
        user = users.get((user_key, at))
        cands = search_candidates(index, toks, user, config.lexical_n)
        if not len(cands):
            continue
        cols = query_columns(index, toks, cands.rows, cands.bm25, user)
        items = index.item_ids[cands.rows]
        grades = relevant.get(qid, {})
        rel = np.array([grades.get(i, 0) for i in items], dtype="float64")
        parts.append(pd.DataFrame({"list_id": qid, "user_key": user_key, "event_timestamp": at, "item_id": items,
                                   "relevance": rel, "label": (rel > 0).astype("float64"),
                                   "lexical_pos": cands.lexical_pos, **cols}))
        if progress is not None and n % 500 == 0:
            progress(n)
    if not parts:
        raise ValueError("no query matched any item: check the index and the query text")
    return pd.concat(parts, ignore_index=True)


def with_search_features(frame: pd.DataFrame, user_stats: pd.DataFrame, item_stats: pd.DataFrame) -> pd.DataFrame:
    """Attach the point-in-time Feast rows and the derived user x item features (as the recommender)."""
    merged = frame.merge(user_stats, on=["user_key", "event_timestamp"], how="left")
    merged = merged.merge(item_stats, on=["item_id", "event_timestamp"], how="left")
    out = add_model_features(merged, horizon_days=1.0)
    return out.assign(**list_columns(out["ui_count"].to_numpy(), out["item_pop_30d"].to_numpy(),
                                     pd.factorize(out["list_id"])[0]))


def truth_of(queries: pd.DataFrame) -> dict[str, set[str]]:
    return queries.groupby("query_id")["item_id"].agg(lambda s: set(s.astype(str))).to_dict()


def baseline_rankings(queries: pd.DataFrame, index: SearchIndex, user_stats: pd.DataFrame,
                      snapshots: Sequence[pd.Timestamp], depth: int = max(KS)) -> dict[str, dict[str, list[str]]]:
    """Each baseline's top `depth` per query, over every item matching the query."""
    heads = queries.drop_duplicates("query_id")[["query_id", "user_key", "event_time", "query"]].copy()
    heads["event_timestamp"] = snapshot_for(heads["event_time"], snapshots)
    users = _user_rows(user_stats, heads[["user_key", "event_timestamp"]].dropna())
    out: dict[str, dict[str, list[str]]] = {"bm25": {}, "bm25_popularity": {}, "own_frequency": {}}
    for qid, user_key, at, text in heads[["query_id", "user_key", "event_timestamp", "query"]].itertuples(index=False):
        toks = query_tokens(text)
        scores = index.scores(toks)
        matched = np.flatnonzero(scores > 0)
        if matched.size == 0:
            for ranking in out.values():
                ranking[qid] = []
            continue
        bm25 = scores[matched]
        out["bm25"][qid] = list(index.item_ids[matched[np.lexsort((matched, -bm25))[:depth]]])
        out["bm25_popularity"][qid] = list(index.item_ids[index.lexical(toks, depth, scores).rows])
        rows, _ = own_frequency_order(index, scores, users.get((user_key, at)), depth)
        out["own_frequency"][qid] = list(index.item_ids[rows])
    return out


def model_rankings(frame: pd.DataFrame, scores: np.ndarray, depth: int = max(KS)) -> dict[str, list[str]]:
    ranked = frame[["list_id", "item_id"]].assign(score=scores).sort_values(
        ["list_id", "score", "item_id"], ascending=[True, False, True])
    return ranked.groupby("list_id", sort=False)["item_id"].agg(lambda s: s.head(depth).tolist()).to_dict()


def judge(rankings: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], n_items: int) -> dict[str, float]:
    """The search metrics of one method, through the project's one metric code."""
    result = evaluate_rankings(rankings, truth, ks=KS, n_items=n_items)
    return {name: float(result[name]) for name in METRICS}


def score_frame(model_dir: str, frame: pd.DataFrame) -> np.ndarray:
    """Scores of a search ranker SavedModel for prepared rows (its own signature's inputs)."""
    from shoprank.models.export import score_saved_model

    return score_saved_model(model_dir, search_inputs(frame))


def split_queries(queries: pd.DataFrame, test_from: pd.Timestamp, validation_share: float,
                  seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / validation (a random share of the queries before `test_from`) / test (from `test_from`)."""
    before = queries[queries["event_time"] < test_from]
    test = queries[queries["event_time"] >= test_from]
    ids = before["query_id"].unique()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(ids, int(len(ids) * validation_share), replace=False)) if len(ids) else set()
    is_val = before["query_id"].isin(held)
    return before[~is_val], before[is_val], test


@dataclass
class SearchRun:
    """A trained search ranker and how it and the baselines did on the test queries."""

    model: object  # keras.Model
    history: dict[str, list[float]]
    table: dict[str, dict[str, float]]  # "baseline/<name>" | "model/personalised" -> metrics
    facts: dict[str, object]
    device: str = "CPU"
    test_frame: pd.DataFrame | None = None  # the test queries' candidate rows, for other models to score
    truth: dict[str, set[str]] | None = None


def train_and_judge(queries: pd.DataFrame, index: SearchIndex, user_stats: pd.DataFrame,
                    item_stats: pd.DataFrame, snapshots: Sequence[pd.Timestamp], test_from: pd.Timestamp,
                    config: SearchConfig, train_config=None, log: Callable[[str], None] = print) -> SearchRun:
    """Train on the queries before `test_from` (a share held out for early stopping), then rank the
    queries from `test_from` with the model and every baseline, through the same metric code."""
    import time

    from shoprank.models.ranker import logit_scorer
    from shoprank.models.train import TrainConfig, train_ranker

    if config.train_weeks is not None:
        queries = queries[queries["event_time"] >= test_from - pd.Timedelta(weeks=config.train_weeks)]
    train_q, val_q, test_q = split_queries(queries, test_from, config.validation_share, config.seed)
    train_q = sample_queries(train_q, config.max_train_queries, config.seed)
    val_q = sample_queries(val_q, max(config.max_train_queries // 5, 1), config.seed)
    test_q = sample_queries(test_q, config.max_eval_queries, config.seed)
    if train_q.empty or test_q.empty:
        raise NotEnoughQueries(f"need queries before and from {test_from.date()}: "
                               f"{train_q['query_id'].nunique()} train, {test_q['query_id'].nunique()} test")
    facts: dict[str, object] = {"queries": {"train": int(train_q["query_id"].nunique()),
                                            "validation": int(val_q["query_id"].nunique()),
                                            "test": int(test_q["query_id"].nunique())}}
    t0 = time.perf_counter()
    frames = {}
    for name, part in (("train", train_q), ("validation", val_q), ("test", test_q)):
        if part.empty:
            frames[name] = pd.DataFrame()
            continue
        frames[name] = with_search_features(candidate_frame(part, index, user_stats, snapshots, config),
                                            user_stats, item_stats)
        log(f"  {name}: {part['query_id'].nunique():,} queries -> {len(frames[name]):,} candidate rows "
            f"(positives {frames[name]['label'].mean():.2%})")
    facts["features_s"] = time.perf_counter() - t0
    fit = frames["train"][frames["train"].groupby("list_id")["label"].transform("max") > 0]
    val = frames["validation"]
    if len(val):
        val = val[val.groupby("list_id")["label"].transform("max") > 0]
    train_config = train_config or TrainConfig(epochs=8, seed=config.seed)
    t0 = time.perf_counter()
    result = train_ranker(fit, val, train_config, verbose=0, features=SEARCH_FEATURES)
    scorer = logit_scorer(result.model)  # what is exported and served: the order survives saturation
    facts["train_s"] = time.perf_counter() - t0
    facts["train_rows"] = len(fit)
    test = frames["test"]
    truth = truth_of(test_q)
    scores = scorer.predict(search_inputs(test), batch_size=65536, verbose=0).reshape(-1)
    table = {f"baseline/{name}": judge(rankings, truth, len(index))
             for name, rankings in baseline_rankings(test_q, index, user_stats, snapshots).items()}
    table["model/personalised"] = judge(model_rankings(test, scores), truth, len(index))
    cands = test.groupby("list_id")["item_id"].agg(set).to_dict()
    facts["candidate_recall"] = float(np.mean([len(t & cands.get(q, set())) / len(t) for q, t in truth.items() if t]))
    facts["candidates_per_query"] = len(test) / max(len(truth), 1)
    return SearchRun(scorer, result.history, table, facts, result.device, test, truth)


def search_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:

    return model_inputs(frame, None, *SEARCH_FEATURES)
