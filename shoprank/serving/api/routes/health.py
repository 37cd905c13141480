"""Liveness, readiness and Prometheus metrics: what Kubernetes and the monitoring ask."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse

from shoprank.serving.api.schemas import ErrorResponse
from shoprank.serving.api.state import AppState

router = APIRouter()


def app_state(request: Request) -> AppState:
    return request.app.state.shoprank


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
async def readyz(request: Request) -> dict:
    state = app_state(request)
    metrics = state.metrics
    problem = state.load_error or await state.check_model()
    metrics.ready.set(0 if problem else 1)
    if problem:  # the probe's answer is for the operator: it says what is missing
        raise HTTPException(503, {"reason": "not_ready", "message": problem}, headers={"Retry-After": "1"})
    recommender = state.loaded()
    table = recommender.items.table
    age = table.version.age_seconds() if table is not None else None
    if age is not None:
        metrics.features_age.set(age)
    live = state.searcher.live if state.searcher is not None else None
    search = ({"index_version": live.index.version if live.index is not None else None,
               "error": live.last_error} if live is not None else {"index_version": None,
                                                                  "error": state.search_error})
    intake = state.intake
    events = {"log": str(intake.log_dir) if intake is not None else None, "error": state.intake_error,
              "sessions": intake is not None and intake.pusher is not None}
    return {"ready": True, "model_version": recommender.signature[0] if recommender.signature else None,
            "items": len(table) if table is not None else 0, "features_age_s": age, "search": search,
            "events": events}


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(request: Request) -> Response:
    state = app_state(request)
    metrics = state.metrics
    recommender = state.recommender
    if recommender is not None and recommender.items.table is not None:
        age = recommender.items.table.version.age_seconds()
        if age is not None:
            metrics.features_age.set(age)
        metrics.features_items.set(len(recommender.items.table))
    if state.intake is not None:
        try:
            health = await asyncio.to_thread(state.intake.roll_health)
        except Exception as err:  # noqa: BLE001 - the store unreachable: the other metrics still answer
            print(f"online API: event roll health unavailable: {type(err).__name__}: {err}", flush=True)
            health = None
        if health is not None:
            metrics.roll_oldest_age.set(health.oldest_unrolled_age_s)
            metrics.roll_quarantined.set(health.quarantined)
            metrics.roll_failing.set(len(health.failing))
        metrics.roll_last_error.set(state.intake.roll_error[0] if state.intake.roll_error else 0)
    return PlainTextResponse(metrics.exposition(), media_type="text/plain; version=0.0.4")
