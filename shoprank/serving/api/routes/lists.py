"""`GET /recommend/{user_id}` and `GET /search`: ranked lists, each logged under its request id."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Path, Query, Request, Response

from shoprank import clock
from shoprank.data.served import served_list
from shoprank.search import MAX_QUERY_CHARS
from shoprank.serving.api.routes.health import app_state
from shoprank.serving.api.schemas import (
    MAX_K,
    MAX_USER_ID,
    NOT_BLANK,
    USER_ID_PATTERN,
    ErrorResponse,
    RecommendResponse,
    SearchResponse,
)
from shoprank.serving.api.state import answer, log_served, timed_json

router = APIRouter()


@router.get("/recommend/{user_id}", response_model=RecommendResponse,
            responses={503: {"model": ErrorResponse, "description": "a downstream service failed; see reason"}})
async def recommend(request: Request,
                    user_id: str = Path(min_length=1, max_length=MAX_USER_ID, pattern=USER_ID_PATTERN),
                    k: int = Query(10, ge=1, le=MAX_K)) -> Response:
    state = app_state(request)
    settings, metrics = state.settings, state.metrics
    recommender = state.loaded()
    started = time.perf_counter()
    result = await answer(state, "/recommend/{user_id}", recommender.recommend(user_id, k),
                          settings.model_timeout_s + settings.online_timeout_s)
    total_ms = (time.perf_counter() - started) * 1000
    for stage, ms in result.stages_ms.items():
        metrics.stages.labels(stage.removesuffix("_ms")).observe(ms / 1000)
    if result.cold_start:
        metrics.cold_start.inc()
    elif result.model_version is not None:
        metrics.model_version.set(result.model_version)
    body = {"user_id": user_id, "request_id": uuid.uuid4().hex, "model_version": result.model_version,
            "cold_start": result.cold_start, "items": [item.__dict__ for item in result.items]}
    log_served(state, served_list(
        body["request_id"], "recommend", clock.now_s(), user_id, [i.item_id for i in result.items],
        [i.score for i in result.items], [i.candidate for i in result.items], model_version=result.model_version,
        reason="cold_start" if result.cold_start else None, candidates=result.candidates,
        candidate_scores=result.candidate_scores, candidate_sources=result.candidate_sources))
    return timed_json(body, result.stages_ms, total_ms)


@router.get("/search", response_model=SearchResponse,
            responses={422: {"description": "empty query, query over the length limit, bad k or user_id"},
                       503: {"model": ErrorResponse, "description": "no index loaded or the feature store failed"}})
async def search(request: Request,
                 q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK,
                                description=f"the search text: not blank, at most {MAX_QUERY_CHARS} characters"),
                 user_id: str | None = Query(None, min_length=1, max_length=MAX_USER_ID, pattern=USER_ID_PATTERN),
                 k: int = Query(10, ge=1, le=MAX_K)) -> Response:
    state = app_state(request)
    settings, metrics = state.settings, state.metrics
    searcher = state.loaded_search()
    started = time.perf_counter()
    result = await answer(state, "/search", searcher.search(q, user_id, k),
                          settings.model_timeout_s + settings.online_timeout_s + 0.5)
    total_ms = (time.perf_counter() - started) * 1000
    for stage, ms in result.stages_ms.items():
        metrics.stages.labels(f"search_{stage.removesuffix('_ms')}").observe(ms / 1000)
    body = {"query": q, "user_id": user_id, "request_id": uuid.uuid4().hex, "personalised": result.personalised,
            "reason": result.reason, "model_version": result.model_version,
            "index_version": result.index_version, "matched": result.matched,
            "items": [item.__dict__ for item in result.items]}
    log_served(state, served_list(
        body["request_id"], "search", clock.now_s(), user_id, [i.item_id for i in result.items],
        [i.score for i in result.items], [i.signal for i in result.items], query=q,
        model_version=result.model_version, index_version=result.index_version, reason=result.reason))
    return timed_json(body, result.stages_ms, total_ms)
