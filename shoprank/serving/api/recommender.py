"""The online path: user id -> Feast online features -> candidates -> ranker on the model server.

Candidates are the user's own top items, the items bought together with the user's history, the
items the most similar shoppers bought and the popular items (the same `user_candidates` the
training set uses, so online candidates are the offline ones), plus the items of the user's live
session (`user_session`, pushed by the event intake) and what is bought with them. Their features are the offline ones
too (`derived.online_model_features`, one definition with the training set's). Per request only
the user's row is read from the online store; every item's row is in memory (`LiveItemTable`,
reloaded whole when the store is materialised again). Scores come from the model server over TF
Serving's gRPC API, asking for the `stable` label; each response names the version that answered,
so a new version (and a new signature) is noticed on the first request it serves. Users the feature
store does not know get the popular items (cold start), labelled as such.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from shoprank import clock
from shoprank.features import store as feast_store
from shoprank.features.calendar import load_calendar
from shoprank.features.definitions import ITEM_NEIGHBOURS_KEY, ITEM_STATS_KEY, KEY_RECORD, POPULAR_KEY, SESSION_VIEW
from shoprank.features.derived import context_column, model_inputs, online_model_features
from shoprank.features.online import LiveItemTable, OnlineFeatures
from shoprank.features.pseudonymise import load_keys, pseudonym
from shoprank.features.session import SessionState, SessionStore, session_state
from shoprank.features.session_inputs import session_inputs
from shoprank.features.training_set import TrainingSetConfig, user_candidates
from shoprank.models import CARD_FILE, MODEL_NAME
from shoprank.serving.api.coalesce import Coalescer
from shoprank.serving.model_server.client import AsyncGrpcClient, ModelServerError, Prediction
from shoprank.settings import Settings
from shoprank.storage import open_for

SERVED_LABEL = "stable"
T = TypeVar("T")
CANDIDATE_SOURCES = (("user_top_items", "own"), ("user_cooc_items", "cooc"), ("user_knn_items", "knn"))


class FeatureStoreError(RuntimeError):
    """The online store could not be read; the message says which store and why."""


class NotReady(RuntimeError):
    """The recommender has not loaded its item features yet."""


@dataclass
class Recommendation:
    item_id: str
    score: float | None
    source: str  # "ranker" or "popular" (cold start)
    category: str | None = None
    candidate: str = "popular"  # where it came from: own, cooc, knn, session, session_cooc, popular


@dataclass
class RecommendResult:
    items: list[Recommendation]
    model_version: int | None
    cold_start: bool
    stages_ms: dict[str, float] = field(default_factory=dict)
    # everything the ranker scored, for the served-list log (empty for a cold start)
    candidates: list[str] = field(default_factory=list)
    candidate_scores: list[float] = field(default_factory=list)
    candidate_sources: list[str] = field(default_factory=list)


def _offline_item_ids(settings: Settings) -> Callable[[], list[str]]:
    """Every item of the item view's offline source: the rows the online store may hold."""
    def read() -> list[str]:
        data = open_for(settings).get_bytes(ITEM_STATS_KEY)
        return pq.read_table(io.BytesIO(data), columns=["item_id"]).column(0).unique().to_pylist()

    return read


def _item_neighbours(store) -> dict[str, list[str]]:
    """Per item, what is bought with it (the features step's list); empty for stores written before it."""
    try:
        frame = pq.read_table(io.BytesIO(store.get_bytes(ITEM_NEIGHBOURS_KEY))).to_pandas()
    except (OSError, KeyError):
        return {}
    return dict(zip(frame["item_id"].astype(str), frame["neighbours"].map(list), strict=True))


def _session_store(fs, log: Callable[[str], None]) -> SessionStore | None:
    """The session view, when the registry has it (registries applied before it existed do not)."""
    try:
        return SessionStore(fs)
    except Exception as err:  # noqa: BLE001 - feast raises its own NotFound types per registry backend
        log(f"online path: no {SESSION_VIEW} feature view ({type(err).__name__}); serving without sessions")
        return None


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


class OnlineRecommender:
    def __init__(self, settings: Settings, candidates: TrainingSetConfig | None = None,
                 client: AsyncGrpcClient | None = None, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.keys = load_keys(settings.home)
        self.key = self.keys[0].secret
        self._keyed_table: object | None = None
        self.online = OnlineFeatures(feast_store.feature_store(settings, read_timeout_s=settings.online_timeout_s))
        store = open_for(settings)
        popular = pq.read_table(io.BytesIO(store.get_bytes(POPULAR_KEY))).to_pandas()
        self.candidate_config = candidates or TrainingSetConfig()
        self.calendar = load_calendar()
        self.popular = popular.sort_values("rank")["item_id"].astype(str).tolist()
        self.neighbours = _item_neighbours(store)
        self.sessions = _session_store(self.online.fs, log)
        self.items = LiveItemTable(self.online, _offline_item_ids(settings), log=log)
        self.log = log
        self.models = open_for(settings, "models")
        self.client = client or AsyncGrpcClient(settings.model_server_grpc, timeout=settings.model_timeout_s)
        self.coalescer = Coalescer(lambda inputs: self.client.predict_versioned(MODEL_NAME, inputs,
                                                                               label=SERVED_LABEL))
        self.signature: tuple[int, list[str]] | None = None  # (version, input names) last served
        self._context: tuple[int, float] | None = None

    def load(self, refresh_seconds: float | None = 10.0) -> OnlineRecommender:
        """Read the item table now (blocking), then keep it fresh in the background."""
        self.items.refresh()
        if self.items.table is None:
            raise FeatureStoreError(f"online store has no item features: {self.items.last_error}")
        if refresh_seconds:
            self.items.start(refresh_seconds)
        return self

    @property
    def ready(self) -> bool:
        return self.items.table is not None

    def context_share(self) -> float:
        """ctx_event_share of the window that starts now, recomputed once a minute."""
        minute = int(clock.now_s() // 60)
        if self._context is None or self._context[0] != minute:
            now = pd.Timestamp(minute * 60, unit="s", tz="UTC")
            self._context = (minute, float(context_column([now], self.candidate_config.label_days, self.calendar)[0]))
        return self._context[1]

    def select_key(self) -> str:
        """Serve with the key the online store was materialised with (its recorded id); say which."""
        try:
            record = json.loads(open_for(self.settings).get_bytes(KEY_RECORD))
        except (OSError, KeyError, ValueError):
            record = None
        if record is None:  # features written before keys had ids: the current key, as before
            self.key = self.keys[0].secret
            return self.keys[0].id
        matching = [k for k in self.keys if k.id == record["key_id"]]
        if not matching:
            raise FeatureStoreError(
                f"the online store was materialised with pseudonymisation key {record['key_id']}, and this "
                f"process holds keys {[k.id for k in self.keys]} ({', '.join(k.source for k in self.keys)}): "
                f"every user would be unknown. Mount the key the feature job used (during a rotation: as `next`)")
        self.key = matching[0].secret
        return matching[0].id

    def user_key(self, user_id: str) -> str:
        """The user's pseudonym under the key the online store was materialised with."""
        table = self.items.table
        if table is not None and table is not self._keyed_table:  # a new materialisation may bring a new key
            self.select_key()
            self._keyed_table = table
        return pseudonym(user_id, self.key)

    def user_row(self, user_id: str) -> dict | None:
        return self._row(self.user_key(user_id))

    def _row(self, key: str) -> dict | None:
        try:
            return self.online.user_row(key)
        except Exception as err:  # sqlite3/redis errors: the store, not the request, is at fault
            raise FeatureStoreError(f"online store read failed: {type(err).__name__}: {err}") from err

    def session(self, key: str) -> SessionState:
        """The live session of the user with pseudonym `key` (empty when sessions are not registered or
        the read fails: a session is a bonus, its outage must not fail the recommendation)."""
        if self.sessions is None:
            return session_state(None, 0.0)
        try:
            row = self.sessions.read([key])[key]
        except Exception as err:  # noqa: BLE001 - the batch features still answer
            self.log(f"online path: session read failed: {type(err).__name__}: {err}")
            return session_state(None, 0.0)
        return session_state(row, clock.now_s())

    async def recommend(self, user_id: str, k: int = 10) -> RecommendResult:
        table = self.items.table
        if table is None:
            raise NotReady(f"item features not loaded yet ({self.items.last_error or 'loading'})")
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        key = self.user_key(user_id)  # one keyed hash per request, for both rows
        user = self._row(key)
        live = self.session(key)
        session = session_candidates(live, self.neighbours)
        t1 = time.perf_counter()
        stages["user_ms"] = (t1 - t0) * 1000
        if user is None or user.get("user_n_purchases") is None:
            return self._cold_start(session, k, stages)
        candidates = user_candidates(user, self.popular[:self.candidate_config.n_popular], self.candidate_config,
                                     extra=list(session))
        rows = table.take(candidates)
        t2 = time.perf_counter()
        stages["candidates_ms"] = (t2 - t1) * 1000
        inputs = self.inputs(user, rows, self.context_share(), live)
        t3 = time.perf_counter()
        stages["features_ms"] = (t3 - t2) * 1000
        prediction = await self.predict(inputs)
        t4 = time.perf_counter()
        stages["predict_ms"] = (t4 - t3) * 1000
        scores = prediction.outputs["score"].reshape(-1)
        if len(scores) != len(candidates):
            raise ModelServerError(f"model v{prediction.version} returned {len(scores)} scores for "
                                   f"{len(candidates)} candidates", "error")
        order = np.lexsort((np.asarray(candidates, dtype=object).astype(str), -scores))[:k]
        sources = {**session, **self._sources(user)}
        categories = rows.get("item_category", np.full(len(candidates), None, dtype=object))
        items = [Recommendation(candidates[i], float(scores[i]), "ranker", categories[i],
                                sources.get(candidates[i], "popular")) for i in order]
        stages["rank_ms"] = (time.perf_counter() - t4) * 1000
        return RecommendResult(items, prediction.version, False, stages, candidates, scores.astype(float).tolist(),
                               [sources.get(c, "popular") for c in candidates])

    def _cold_start(self, session: dict[str, str], k: int, stages: dict[str, float]) -> RecommendResult:
        """No batch features for this user: the live session's items and what goes with them (a shopper
        new today who has just looked at something), then the popular items."""
        ranked = list(dict.fromkeys([*[i for i, s in session.items() if s == "session_cooc"],
                                     *[i for i, s in session.items() if s == "session"], *self.popular]))[:k]
        items = [Recommendation(item, None, "popular", None, session.get(item, "popular")) for item in ranked]
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
    def _sources(user: dict) -> dict[str, str]:
        sources: dict[str, str] = {}
        for column, name in CANDIDATE_SOURCES:
            for item in user.get(column) or []:
                sources.setdefault(item, name)
        return sources

    async def predict(self, inputs: dict[str, np.ndarray]) -> Prediction:
        """Score with the `stable` version, sending what its signature asks for.

        A model trained before a feature was added keeps working while the new one rolls out. When
        the answering version differs from the one whose signature was sent, the next request
        re-reads the signature; a request the new version refuses for its inputs is retried once
        with the new signature.
        """
        for attempt in (1, 2):
            if self.signature is None:
                await self.refresh_signature()
            version, wanted = self.signature  # type: ignore[misc]
            lacking = [name for name in wanted if name not in inputs]
            if lacking:
                raise ModelServerError(f"model v{version} needs inputs the online path does not compute: {lacking}",
                                       "incompatible_model")
            try:
                prediction = await self.coalescer.predict({n: inputs[n] for n in wanted})
            except ModelServerError as err:
                if err.reason in ("invalid_argument", "not_found") and attempt == 1:
                    self.signature = None  # the label moved to a version with another signature
                    continue
                raise
            if prediction.version != version:
                self.signature = None
            return prediction
        raise AssertionError("unreachable")

    async def refresh_signature(self) -> tuple[int, list[str]]:
        """The `stable` version's signature, and its training settings from its model card."""
        signature = await self.client.signature(MODEL_NAME, label=SERVED_LABEL)
        if self.signature is None or signature[0] != self.signature[0]:
            self.candidate_config = self.served_config(signature[0])
            self._context = None
        self.signature = signature
        return signature

    def served_config(self, version: int) -> TrainingSetConfig:
        """The candidate and label settings version `version` was trained with (its model card); the
        defaults, said aloud, for a model whose card predates them."""
        from dataclasses import fields

        try:
            card = json.loads(self.models.get_bytes(f"{MODEL_NAME}/{version}/{CARD_FILE}"))
            trained = card.get("training_set") or {}
        except (OSError, KeyError, ValueError) as err:
            trained, card = {}, {"error": f"{type(err).__name__}: {err}"}
        if not trained:
            self.log(f"online path: {MODEL_NAME} v{version} has no training settings in its model card "
                     f"({card.get('error', 'an older card')}); using the defaults")
            return TrainingSetConfig()
        known = {f.name for f in fields(TrainingSetConfig)}
        return TrainingSetConfig(**{k: v for k, v in trained.items() if k in known})

    def recommend_blocking(self, user_id: str, k: int = 10) -> RecommendResult:
        """`recommend` for scripts (CLI, demo): runs on this recommender's own event loop."""
        return self.run_blocking(lambda: self.recommend(user_id, k))

    def run_blocking(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine of the online path (a recommendation, a search) from a script."""
        import asyncio

        if not hasattr(self, "_loop"):
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(make())

    def close(self) -> None:
        self.items.stop()
        if hasattr(self, "_loop"):
            self._loop.run_until_complete(self.client.close())
            self._loop.close()
