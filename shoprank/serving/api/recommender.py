"""The online path: user id -> Feast online features -> candidates -> ranker on the model server.

Candidates are the user's own top items, the items bought together with the user's history, the
items the most similar shoppers bought and the popular items (the same `user_candidates` the
training set uses, so online candidates are the offline ones), plus the items of the user's live
session (`user_session`, pushed by the event intake) and what is bought with them, and the sequence
model's next items after the shopper's `user_item_sequence` (`SequenceSource`, when one is served).
Their features are the offline ones
too (`derived.online_model_features`, one definition with the training set's). Per request only
the user's row is read from the online store; every item's row is in memory (`LiveItemTable`,
reloaded whole when the store is materialised again). Scores come from the model server over TF
Serving's gRPC API, asking for the `stable` label (`ServedModel`); the served version's model card
(its candidate settings) is read before the candidates are built, so a new version is served with
its own settings from its first request. Users the feature
store does not know get the popular items (cold start), labelled as such.
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from shoprank import clock
from shoprank.evaluation.experiments.config import Arm
from shoprank.features.calendar import load_calendar
from shoprank.features.definitions import POPULAR_KEY
from shoprank.features.derived import context_column, model_inputs, online_model_features
from shoprank.features.session import SessionState
from shoprank.features.session_inputs import session_inputs
from shoprank.features.training_set import TrainingSetConfig, user_candidates
from shoprank.models import MODEL_NAME
from shoprank.models.card import ModelCard
from shoprank.serving.api.arms import ArmRankers
from shoprank.serving.api.context import NotReady, OnlineContext
from shoprank.serving.api.deciding import Shown, decide_and_explain
from shoprank.serving.api.sequence_source import SequenceSource
from shoprank.serving.api.users import FeatureStoreError, Subject, UserContext
from shoprank.serving.decision.rules import RuleSet
from shoprank.serving.decision.stage import Ranked
from shoprank.serving.model_server.client import AsyncGrpcClient
from shoprank.settings import Settings
from shoprank.storage import open_for

T = TypeVar("T")
CANDIDATE_SOURCES = (("user_top_items", "own"), ("user_cooc_items", "cooc"), ("user_knn_items", "knn"))
__all__ = ["FeatureStoreError", "NotReady", "OnlineRecommender", "RecommendResult", "Recommendation"]


Recommendation = Shown  # one recommended item: the decision stage's answer


@dataclass
class RecommendResult:
    items: list[Shown]
    model_version: int | None
    cold_start: bool
    stages_ms: dict[str, float] = field(default_factory=dict)
    # everything the ranker scored, for the served-list log (empty for a cold start)
    candidates: list[str] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)
    candidate_sources: list[str] = field(default_factory=list)
    # an experiment's arm: the interleaving team of each candidate ("a", "b"), and why the arm's own
    # model did not answer (the control's did) when it failed
    teams: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None


SESSION_NEIGHBOURS = 10  # "bought together" items added per session item


def session_candidates(session: SessionState, neighbours: dict[str, list[str]]) -> dict[str, str]:
    """The live session's items and what is bought with them, in order, with their source label."""
    out: dict[str, str] = {}
    for item in session.items:
        out.setdefault(item, "session")
    for item in session.items:
        for other in neighbours.get(item, [])[:SESSION_NEIGHBOURS]:
            out.setdefault(other, "session_cooc")
    return out


def training_settings(card: ModelCard, log: Callable[[str], None], name: str = MODEL_NAME,
                      version: int | None = None) -> TrainingSetConfig:
    """The candidate and label settings a ranker version was trained with (its model card); the
    defaults, said aloud, for a card that predates them."""
    trained = card.training_set or {}
    if not trained:
        log(f"online path: {name} v{version} has no training settings in its model card; using the defaults")
        return TrainingSetConfig()
    known = {f.name for f in fields(TrainingSetConfig)}
    return TrainingSetConfig(**{k: v for k, v in trained.items() if k in known})


class OnlineRecommender:
    def __init__(self, settings: Settings, candidates: TrainingSetConfig | None = None,
                 client: AsyncGrpcClient | None = None, log: Callable[[str], None] = print,
                 context: OnlineContext | None = None) -> None:
        self.settings = settings
        self.log = log
        self.context = context or OnlineContext(settings, client, log)
        store = open_for(settings)
        popular = pq.read_table(io.BytesIO(store.get_bytes(POPULAR_KEY))).to_pandas()
        self.popular = popular.sort_values("rank")["item_id"].astype(str).tolist()
        self.calendar = load_calendar()
        self.arms = ArmRankers(MODEL_NAME, self.context.client, self.context.models, log=log)
        self.ranker = self.arms.stable
        self.sequence = SequenceSource(self.context.client, self.context.models, log=log)
        self._fixed_config = candidates
        self._configs: dict[int, TrainingSetConfig] = {}
        self._context: tuple[int, int, float] | None = None  # (minute, label_days, share)

    # the shared pieces, under the names the scripts and tests use
    @property
    def items(self):
        return self.context.items

    @property
    def neighbours(self):
        """Per item, what is bought with it (the night's `neighbours` artifact, live)."""
        return self.context.catalogue.neighbours

    @property
    def models(self):
        return self.context.models

    @property
    def client(self) -> AsyncGrpcClient:
        return self.context.client

    @property
    def sessions(self):
        return self.context.shoppers.sessions

    @property
    def online(self):
        return self.context.shoppers.online

    @property
    def signature(self) -> tuple[int, list[str]] | None:
        return self.ranker.signature

    @property
    def candidate_config(self) -> TrainingSetConfig:
        """The settings of the version last read (the defaults before any)."""
        if self._fixed_config is not None:
            return self._fixed_config
        version = self.ranker.signature[0] if self.ranker.signature else None
        return self._configs.get(version, TrainingSetConfig()) if version is not None else TrainingSetConfig()

    def config_of(self, version: int, card: ModelCard) -> TrainingSetConfig:
        if self._fixed_config is not None:
            return self._fixed_config
        if version not in self._configs:
            self._configs[version] = training_settings(card, self.log, MODEL_NAME, version)
        return self._configs[version]

    def load(self, refresh_seconds: float | None = 10.0) -> OnlineRecommender:
        self.context.load(refresh_seconds)
        return self

    @property
    def ready(self) -> bool:
        return self.items.table is not None

    def context_share(self, label_days: int | None = None) -> float:
        """ctx_event_share of the window that starts now, recomputed once a minute."""
        days = label_days if label_days is not None else self.candidate_config.label_days
        minute = int(clock.now_s() // 60)
        if self._context is None or self._context[:2] != (minute, days):
            now = pd.Timestamp(minute * 60, unit="s", tz="UTC")
            self._context = (minute, days, float(context_column([now], days, self.calendar)[0]))
        return self._context[2]

    def key_id(self) -> str | None:
        """The id of the pseudonymisation key the online store was materialised with."""
        self.context.shoppers.follow(self.items.table)
        return self.context.shoppers.key_id

    def user_row(self, subject: Subject) -> dict | None:
        return self.context.user(subject).row

    async def refresh_signature(self) -> tuple[int, list[str]]:
        """The `stable` version's signature (and card), read now: the readiness check."""
        return await self.ranker.refresh()

    async def recommend(self, subject: Subject | None, k: int = 10, arm: Arm | None = None,
                        rules: RuleSet | None = None) -> RecommendResult:
        """The top `k` for the shopper `subject` names (None: anonymous, the popular items), by the
        ranker and candidate settings of the experiment's `arm` (None: `stable`'s), under `rules`
        (None: the live rule set)."""
        table = self.context.table()
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        user = self.context.user(subject)  # one row read, one session read
        session = session_candidates(user.session, self.neighbours)
        t1 = time.perf_counter()
        stages["user_ms"] = (t1 - t0) * 1000
        if not user.known:
            return self._cold_start(user, session, k, stages, rules)
        suppression = (rules or self.context.catalogue.rules).suppression
        impressions = self.context.shoppers.impressions(user.key, suppression.days) if suppression else None
        version, card, failed = await self.arms.current(arm)  # the scorer's settings, before its candidates
        arm = None if failed else arm
        config = self.config_of(version, card)
        if arm is not None and arm.candidates:
            config = replace(config, **arm.candidates)
        wanted = self.settings.sequence_candidates
        t_seq = time.perf_counter()
        following = await self.sequence.next_items(user.row, user.session.carted,
                                                   config.n_sequence if wanted < 0 else wanted)
        stages["sequence_ms"] = (time.perf_counter() - t_seq) * 1000  # inside candidates_ms
        following = [item for item in following if item in table.index]  # no features, no score: not a candidate
        candidates = user_candidates(user.row, self.popular[:config.n_popular], config,
                                     extra=[*session, *following])
        rows = table.take(candidates)
        t2 = time.perf_counter()
        stages["candidates_ms"] = (t2 - t1) * 1000
        inputs = self.inputs(user.row, rows, self.context_share(config.label_days), user.session)
        t3 = time.perf_counter()
        stages["features_ms"] = (t3 - t2) * 1000
        scored = await self.arms.scores(arm, inputs, candidates)
        scores = scored.scores
        t4 = time.perf_counter()
        stages["predict_ms"] = (t4 - t3) * 1000
        order = np.lexsort((np.asarray(candidates, dtype=object).astype(str), -scores))
        sources = {**{item: "sequence" for item in following}, **session, **self._sources(user)}
        ranked = [Ranked(candidates[i], float(scores[i]), sources.get(candidates[i], "popular")) for i in order]
        t5 = time.perf_counter()
        stages["rank_ms"] = (t5 - t4) * 1000
        items = decide_and_explain(self.context.catalogue, ranked, k, scored=True, source="ranker", user=user.row,
                                   session=user.session.items, impressions=impressions, rules=rules)
        stages["decide_ms"] = (time.perf_counter() - t5) * 1000
        return RecommendResult(items, scored.version, False, stages, candidates, scores.astype(float).tolist(),
                               [sources.get(c, "popular") for c in candidates], scored.teams,
                               failed or scored.fallback)

    def _cold_start(self, user: UserContext, session: dict[str, str], k: int, stages: dict[str, float],
                    rules: RuleSet | None = None) -> RecommendResult:
        """No batch features for this user: the live session's items and what goes with them (a shopper
        new today who has just looked at something), then the popular items; the rules as for anyone."""
        t0 = time.perf_counter()
        order = list(dict.fromkeys([*[i for i, s in session.items() if s == "session_cooc"],
                                    *[i for i, s in session.items() if s == "session"], *self.popular]))
        ranked = [Ranked(item, float(len(order) - n), session.get(item, "popular")) for n, item in enumerate(order)]
        items = decide_and_explain(self.context.catalogue, ranked, k, scored=False, source="popular",
                                   session=user.session.items, rules=rules)
        stages["decide_ms"] = (time.perf_counter() - t0) * 1000
        return RecommendResult(items, None, True, stages)

    @staticmethod
    def inputs(user: dict, rows: dict[str, np.ndarray], ctx_event_share: float,
               session: SessionState | None = None) -> dict[str, np.ndarray]:
        """The ranker's inputs for one user's candidate rows (`ItemTable.take`): the training set's
        features, the session inputs from the live session (the session's items are candidates, so
        their categories are among the rows)."""
        n = len(rows["item_id"])
        features = online_model_features(user, rows, ctx_event_share)
        if session is not None and session.items:
            ids, categories = rows["item_id"], rows.get("item_category", np.full(n, None, dtype=object))
            features.update(session_inputs(session.viewed, session.carted, ids, categories,
                                           dict(zip(ids, categories, strict=True))))
        return model_inputs(features, n)

    @staticmethod
    def _sources(user: UserContext) -> dict[str, str]:
        sources: dict[str, str] = {}
        for column, name in CANDIDATE_SOURCES:
            for item in (user.row or {}).get(column) or []:
                sources.setdefault(item, name)
        return sources

    def recommend_blocking(self, subject: Subject | None, k: int = 10) -> RecommendResult:
        """`recommend` for scripts (CLI, demo): runs on the context's own event loop."""
        return self.run_blocking(lambda: self.recommend(subject, k))

    def run_blocking(self, make: Callable[[], Awaitable[T]]) -> T:
        return self.context.run_blocking(make)

    def close(self) -> None:
        self.context.close()
