"""Online search: query (+ user) -> lexical candidates -> search ranker on the model server.

The index is loaded like a model version: the newest complete version under
`<models>/search_index/` (its manifest is written last), copied whole (S3: into a cache folder
marked complete), loaded whole, then swapped in; a request sees the old index or the new one,
never a mix. A user the feature store knows gets the search ranker's order (`ranker`); an
anonymous or unknown user, or a moment when the ranker cannot answer, gets the lexical order:
BM25 (`lexical`), and among items of equal BM25, popularity (`popular`). The response says which
and why, per item and for the whole answer.

When the nightly found no search ranker better than a rule on the held-out week, it publishes that
decision beside the models (`search_serving.json`, polled with the index) and known shoppers get the
rule instead: their own purchase counts among the matches (`own_frequency`, reason
`rule_own_frequency`) or the lexical order (reason `rule_lexical`).

A shopper in a search experiment gets their arm: an arm that serves `stable` follows the nightly's
decision as everyone else does; an arm that names another label, a pinned version or an interleaved
pair is served by those rankers whatever the nightly decided (the experiment is the person's explicit
choice, and it is measured against the control that follows the decision).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoprank.evaluation.experiments.config import Arm
from shoprank.features.derived import model_inputs, online_model_features
from shoprank.layout import SEARCH_SERVING_KEY
from shoprank.models.card import ModelCard
from shoprank.search import SEARCH_MODEL_NAME
from shoprank.search.features import SEARCH_FEATURES, list_columns, query_columns, search_candidates
from shoprank.search.index import SearchIndex, index_versions, load_version
from shoprank.search.rules import SearchServing, own_frequency_order
from shoprank.search.text import query_tokens
from shoprank.search.training import SearchConfig
from shoprank.serving.api.arms import ArmRankers, ArmScores
from shoprank.serving.api.context import NotReady, OnlineContext
from shoprank.serving.api.deciding import Shown, decide_and_explain
from shoprank.serving.api.served_model import ServedModel
from shoprank.serving.api.users import Subject
from shoprank.serving.decision.new_items import matching_new_items
from shoprank.serving.decision.rules import RuleSet
from shoprank.serving.decision.stage import Ranked
from shoprank.serving.model_server.client import ModelServerError
from shoprank.serving.model_server.versions import local_copy
from shoprank.storage import ObjectStore

DEFAULT_LEXICAL_N = SearchConfig().lexical_n  # for a card that predates the setting
SEARCH_NEW_ITEM_SLOTS = 2  # today's new items that match the query get at least these slots


def read_serving(store: ObjectStore, current: SearchServing, log: Callable[[str], None]) -> SearchServing:
    """The nightly's search serving decision; the current one while it cannot be read (none yet: the ranker)."""
    try:
        if not store.exists(SEARCH_SERVING_KEY):
            return current
        decided = SearchServing.from_dict(json.loads(store.get_bytes(SEARCH_SERVING_KEY)))
    except Exception as err:  # noqa: BLE001 - a broken decision must not take search down
        log(f"online search: {SEARCH_SERVING_KEY} unreadable ({type(err).__name__}: {err}); still serving "
            f"{current.serve}")
        return current
    if decided != current:
        log(f"online search: serving {decided.serve} to known shoppers: {decided.why}")
    return decided


class LiveSearchIndex:
    """The newest complete index version, polled in the background and swapped in whole."""

    def __init__(self, store: ObjectStore, cache_dir: Path, log: Callable[[str], None] = print) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir)
        self.log = log
        self.index: SearchIndex | None = None
        self.last_error: str | None = None
        self._failed: set[int] = set()
        self.serving = SearchServing()  # what known shoppers get, as the nightly decided
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Load the newest version newer than the one served; a version that fails to load is skipped
        for good (and said, in `last_error`), and the one before it is tried, while the current one
        keeps serving."""
        self.serving = read_serving(self.store, self.serving, self.log)
        try:
            versions = [v for v in index_versions(self.store) if v not in self._failed]
        except Exception as err:  # noqa: BLE001 - the store is down: keep serving what is loaded
            self.last_error = f"listing search indexes failed: {type(err).__name__}: {err}"
            return
        if not versions:
            self.last_error = self.last_error or "no search index published yet"
            return
        current = self.index.version if self.index is not None else None
        for version in reversed(versions):  # the newest that loads; a broken newest falls back
            if current is not None and version <= current:
                return
            started = time.perf_counter()
            try:
                index = load_version(self.store, version, lambda p: local_copy(self.store, p, self.cache_dir))
            except Exception as err:  # noqa: BLE001 - a broken version must not take search down
                self._failed.add(version)
                self.last_error = f"search index v{version} failed to load: {type(err).__name__}: {err}"
                self.log(f"online search: {self.last_error}; still serving "
                         f"{'v' + str(current) if current is not None else 'nothing'}")
                continue
            self.index = index
            self.log(f"online search: index v{version} ({len(index):,} items) loaded in "
                     f"{time.perf_counter() - started:.1f}s")
            return

    def start(self, period_s: float = 10.0) -> LiveSearchIndex:
        def loop() -> None:
            while not self._stop.wait(period_s):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="search-index-refresh", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


@dataclass
class SearchHit:
    item_id: str
    score: float
    signal: str  # "ranker", "lexical", "popular" or "own_frequency": what placed the item
    category: str | None = None
    brand: str | None = None


@dataclass
class SearchResult:
    items: list[Shown]  # what the shopper is shown: the hits after the decision stage
    personalised: bool
    # "no_match", "anonymous", "unknown_user", "feature_store" (the user's row could not be read),
    # "ranker_<why>"; None when personalised
    reason: str | None
    model_version: int | None
    index_version: int | None
    matched: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    hits: list[SearchHit] = field(default_factory=list)  # the matches in order, before the rules
    teams: dict[str, str] = field(default_factory=dict)  # an interleaved arm's team of each hit
    fallback: str | None = None  # why `stable` answered instead of the experiment arm's model


class OnlineSearch:
    """Search over the live index, personalised through the shared online context (the same shoppers,
    item table and model server client as recommendations) and the search ranker's `ServedModel`."""

    def __init__(self, context: OnlineContext, index: LiveSearchIndex, lexical_n: int | None = None) -> None:
        self.context = context
        self.live = index
        self.fixed_lexical_n = lexical_n
        self.arms = ArmRankers(SEARCH_MODEL_NAME, context.client, context.models, log=context.log)
        self.ranker: ServedModel = self.arms.stable

    def lexical_n(self, card: ModelCard | None = None, arm: Arm | None = None) -> int:
        """Lexical candidates per query: the experiment arm's setting, else the served version's as it
        was trained (its card; none: the default)."""
        if arm is not None and arm.candidates and "lexical_n" in arm.candidates:
            return int(arm.candidates["lexical_n"])
        if self.fixed_lexical_n is not None:
            return self.fixed_lexical_n
        trained = card.search_config if card is not None else None
        return int((trained or {}).get("lexical_n", DEFAULT_LEXICAL_N))

    async def search(self, query: str, subject: Subject | None, k: int = 10, arm: Arm | None = None,
                     rules: RuleSet | None = None) -> SearchResult:
        """The matches for `query`, personalised for `subject` where it can be, by the experiment's
        `arm` (None: what `stable` serves) under `rules` (None: the live rule set)."""
        index = self.live.index
        if index is None:
            raise NotReady(f"no search index loaded ({self.live.last_error or 'loading'})")
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        tokens = query_tokens(query)
        user = self.context.user(subject, tolerate_store_errors=True)  # search answers unpersonalised on errors
        t1 = time.perf_counter()
        stages["user_ms"] = (t1 - t0) * 1000
        result = await self._ranked(index, tokens, subject, user, stages, t1, arm)
        t2 = time.perf_counter()
        fresh = matching_new_items(self.context.catalogue.new_items(), tokens, SEARCH_NEW_ITEM_SLOTS)
        if not result.hits and not fresh:
            return SearchResult([], False, "no_match", None, index.version, 0, stages)
        ranked = [Ranked(h.item_id, h.score, "own" if h.signal == "own_frequency" else "search") for h in result.hits]
        result.items = decide_and_explain(
            self.context.catalogue, ranked, k, scored=True, source={h.item_id: h.signal for h in result.hits},
            user=user.row if result.personalised else None, session=user.session.items if result.personalised else (),
            new_items=fresh, new_item_slots=len(fresh), rules=rules)
        if not result.hits:  # only today's new items match: found, and said so
            result.reason = result.reason or "new_items_only"
        result.matched += len(fresh)
        stages["decide_ms"] = (time.perf_counter() - t2) * 1000
        return result

    async def _ranked(self, index: SearchIndex, tokens: list[str], subject: Subject | None, user,
                      stages: dict[str, float], t1: float, arm: Arm | None) -> SearchResult:
        """The matches in the order the serving decision (or the experiment's arm) gives them (ranker,
        rule or lexical), uncut: the decision stage cuts them to k after its rules."""
        k = self.lexical_n(arm=arm)
        rule = self.live.serving.serve if self.arms.follows_stable(arm) else "ranker"
        if not user.known or rule == "lexical":
            reason = ("rule_lexical" if user.known else "anonymous" if not subject
                      else "feature_store" if user.store_error else "unknown_user")
            cands = search_candidates(index, tokens, None, k)
            stages["lexical_ms"] = (time.perf_counter() - t1) * 1000
            if not len(cands):
                return SearchResult([], False, reason, None, index.version, 0, stages)
            return self._lexical(index, cands, k, reason, stages)
        if rule == "own_frequency":
            return self._own_frequency(index, tokens, user.row, k, stages, t1)
        failed = None
        try:  # the version that will score, and its card, before its candidates
            async with asyncio.timeout(self.context.settings.model_timeout_s):
                _, card, failed = await self.arms.current(arm)
        except (ModelServerError, TimeoutError) as err:
            card, ranker_error = ModelCard(model=SEARCH_MODEL_NAME), err
        else:
            ranker_error = None
        arm = None if failed else arm
        t2 = time.perf_counter()
        cands = search_candidates(index, tokens, user.row, self.lexical_n(card, arm))
        stages["lexical_ms"] = (time.perf_counter() - t2) * 1000
        if not len(cands):
            return SearchResult([], False, "no_match", None, index.version, 0, stages)
        k = len(cands)
        if ranker_error is not None:
            return self._lexical(index, cands, k, f"ranker_{_why(ranker_error)}", stages)
        try:
            scored = await self._rank(index, tokens, user.row, cands, stages, arm)
        except (ModelServerError, TimeoutError) as err:
            return self._lexical(index, cands, k, f"ranker_{_why(err)}", stages)
        order = np.lexsort((cands.rows, -scored.scores))[:k]
        hits = [SearchHit(str(index.item_ids[cands.rows[i]]), float(scored.scores[i]), "ranker",
                          index.category[cands.rows[i]] or None, index.brand[cands.rows[i]] or None) for i in order]
        return SearchResult([], True, None, scored.version, index.version, cands.n_matched, stages, hits,
                            scored.teams, failed or scored.fallback)

    @staticmethod
    def _own_frequency(index: SearchIndex, tokens: list[str], user: dict, k: int, stages: dict[str, float],
                       started: float) -> SearchResult:
        """The rule the nightly measured better than any search ranker: the shopper's own purchase counts
        among the matches, then popularity, then BM25; each item says whether their history placed it."""
        scores = index.scores(tokens)
        rows, own = own_frequency_order(index, scores, user, k)
        stages["lexical_ms"] = (time.perf_counter() - started) * 1000
        matched = int((scores > 0).sum())
        if not len(rows):
            return SearchResult([], False, "no_match", None, index.version, 0, stages)
        hits = [SearchHit(str(index.item_ids[r]), float(scores[r]), "own_frequency" if n > 0 else "lexical",
                           index.category[r] or None, index.brand[r] or None) for r, n in zip(rows, own, strict=True)]
        return SearchResult([], True, "rule_own_frequency", None, index.version, matched, stages, hits)

    @staticmethod
    def _lexical(index: SearchIndex, cands, k: int, reason: str, stages: dict[str, float]) -> SearchResult:
        lexical = np.flatnonzero(cands.lexical_pos >= 0)[:k]
        hits = [SearchHit(str(index.item_ids[cands.rows[i]]), float(cands.bm25[i]),
                           "popular" if cands.tied[i] else "lexical", index.category[cands.rows[i]] or None,
                           index.brand[cands.rows[i]] or None) for i in lexical]
        return SearchResult([], False, reason, None, index.version, cands.n_matched, stages, hits)

    async def _rank(self, index: SearchIndex, tokens: list[str], user: dict, cands,
                    stages: dict[str, float], arm: Arm | None) -> ArmScores:
        t0 = time.perf_counter()
        table = self.context.items.table
        if table is None:
            raise ModelServerError("item features not loaded", "not_ready")
        rows = table.take(list(index.item_ids[cands.rows]))
        data = online_model_features(user, rows, 0.0)
        data.update(query_columns(index, tokens, cands.rows, cands.bm25, user))
        data.update(list_columns(data["ui_count"], data["item_pop_30d"], np.zeros(len(cands), dtype=np.int64)))
        inputs = model_inputs(data, len(cands), *SEARCH_FEATURES)
        t1 = time.perf_counter()
        stages["features_ms"] = (t1 - t0) * 1000
        async with asyncio.timeout(self.context.settings.model_timeout_s):
            scored = await self.arms.scores(arm, inputs, [str(i) for i in index.item_ids[cands.rows]])
        stages["predict_ms"] = (time.perf_counter() - t1) * 1000
        return scored

    def close(self) -> None:
        self.live.stop()


def _why(err: Exception) -> str:
    return err.reason if isinstance(err, ModelServerError) else "timeout"
