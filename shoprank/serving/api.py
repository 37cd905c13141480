"""The online recommendation API the shop's front end calls (FastAPI; OpenAPI at /docs).

- `GET /recommend/{user_id}?k=10`: ranked items with a `request_id` and the model version;
- `GET /healthz`: the process is alive; `GET /readyz`: 200 only once item features are loaded and
  the model server answers for the `stable` ranker (what a Kubernetes readiness probe asks);
- `GET /metrics`: Prometheus metrics (requests, latency by route and stage, errors by reason,
  served model version, age of the online features).

Every downstream call has a deadline (settings `model_timeout_s`, `online_timeout_s`); when one fails
or times out the answer is a 503 whose body names the reason, never a hang or a bare 500. The app
starts answering at once and loads its features in the background, so probes can tell "starting"
(503 from /readyz) from "dead" (no answer).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Path, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from shoprank.serving.api_metrics import ApiMetrics
from shoprank.serving.client import ModelServerError
from shoprank.serving.recommend import FeatureStoreError, NotReady, OnlineRecommender
from shoprank.settings import Settings, load_settings

USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # any printable text; control characters are refused
MAX_USER_ID = 128
MAX_K = 100


class Item(BaseModel):
    item_id: str
    score: float | None
    source: str
    category: str | None
    candidate: str


class RecommendResponse(BaseModel):
    user_id: str
    request_id: str
    model_version: int | None
    cold_start: bool
    items: list[Item]


class ErrorDetail(BaseModel):
    reason: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


def _unavailable(reason: str, message: str) -> HTTPException:
    return HTTPException(status_code=503, detail={"reason": reason, "message": message},
                         headers={"Retry-After": "1"})


class AppState:
    """The recommender, loaded in a background thread; retried until it loads."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], OnlineRecommender],
                 retry_seconds: float = 5.0) -> None:
        self.settings = settings
        self.factory = factory
        self.retry_seconds = retry_seconds
        self.recommender: OnlineRecommender | None = None
        self.load_error: str | None = "loading"
        self.done = threading.Event()
        self.stopping = threading.Event()
        self._model_checked = 0.0
        self.model_error: str | None = "not checked yet"

    def load(self) -> None:
        """Build the recommender; on failure say why (readiness, every request) and try again."""
        while not self.stopping.is_set():
            try:
                self.recommender = self.factory(self.settings)
                self.load_error = None
                self.done.set()
                return
            except Exception as err:  # noqa: BLE001 - reported by /readyz and every request
                self.load_error = f"{type(err).__name__}: {err}"
                print(f"online API: could not load the recommender (retrying in {self.retry_seconds:.0f}s): "
                      f"{self.load_error}", flush=True)
                self.done.set()  # startup waits no longer: serve, not ready, while retrying
            self.stopping.wait(self.retry_seconds)

    def loaded(self) -> OnlineRecommender:
        if self.recommender is None:
            raise _unavailable("not_ready", f"the recommender is not loaded: {self.load_error}")
        return self.recommender

    async def check_model(self, max_age_s: float = 1.0) -> str | None:
        """None when the model server serves the `stable` ranker (checked at most once a second)."""
        if self.recommender is None:
            return "recommender not loaded"
        if time.monotonic() - self._model_checked > max_age_s:
            try:
                await self.recommender.refresh_signature()
                self.model_error = None
            except ModelServerError as err:
                self.model_error = str(err)
            self._model_checked = time.monotonic()
        return self.model_error


class RequestMetrics:
    """Requests and latency by route and status, as plain ASGI middleware: Starlette's
    `BaseHTTPMiddleware` (`@app.middleware("http")`) measured 0.8 ms of CPU per request here, more
    than the rest of the framework together."""

    def __init__(self, app, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            path = route.path if route is not None else "unmatched"
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


def default_factory(settings: Settings) -> OnlineRecommender:
    return OnlineRecommender(settings).load()


def create_app(settings: Settings | None = None,
               factory: Callable[[Settings], OnlineRecommender] = default_factory,
               startup_wait_s: float = 120.0) -> FastAPI:
    """The app. Startup waits up to `startup_wait_s` for the recommender to load, so a worker takes
    connections only once it can answer (with several workers on one socket, a loading worker must
    not be handed requests); if loading fails or takes longer, it serves anyway and says not ready."""
    settings = settings or load_settings()
    metrics = ApiMetrics()
    state = AppState(settings, factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, name="load-recommender", daemon=True).start()
        await asyncio.to_thread(state.done.wait, startup_wait_s)
        yield
        state.stopping.set()
        if state.recommender is not None:
            state.recommender.items.stop()
            await state.recommender.client.close()

    app = FastAPI(title="shoprank", description="What should this user see?", lifespan=lifespan)
    app.state.shoprank = state

    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz() -> dict:
        problem = state.load_error or await state.check_model()
        metrics.ready.set(0 if problem else 1)
        if problem:
            raise _unavailable("not_ready", problem)
        recommender = state.loaded()
        table = recommender.items.table
        age = table.version.age_seconds() if table is not None else None
        if age is not None:
            metrics.features_age.set(age)
        return {"ready": True, "model_version": recommender.signature[0] if recommender.signature else None,
                "items": len(table) if table is not None else 0, "features_age_s": age}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        recommender = state.recommender
        if recommender is not None and recommender.items.table is not None:
            age = recommender.items.table.version.age_seconds()
            if age is not None:
                metrics.features_age.set(age)
            metrics.features_items.set(len(recommender.items.table))
        return PlainTextResponse(metrics.exposition(), media_type="text/plain; version=0.0.4")

    @app.get("/recommend/{user_id}", response_model=RecommendResponse,
             responses={503: {"model": ErrorResponse, "description": "a downstream service failed; see reason"}})
    async def recommend(user_id: str = Path(min_length=1, max_length=MAX_USER_ID, pattern=USER_ID_PATTERN),
                        k: int = Query(10, ge=1, le=MAX_K)) -> Response:
        recommender = state.loaded()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(settings.model_timeout_s + settings.online_timeout_s):
                result = await recommender.recommend(user_id, k)
        except NotReady as err:
            metrics.errors.labels("/recommend/{user_id}", "not_ready").inc()
            raise _unavailable("not_ready", str(err)) from err
        except FeatureStoreError as err:
            metrics.errors.labels("/recommend/{user_id}", "feature_store").inc()
            raise _unavailable("feature_store", str(err)) from err
        except ModelServerError as err:
            metrics.errors.labels("/recommend/{user_id}", f"model_server_{err.reason}").inc()
            raise _unavailable(f"model_server_{err.reason}", str(err)) from err
        except TimeoutError as err:
            metrics.errors.labels("/recommend/{user_id}", "timeout").inc()
            raise _unavailable("timeout", "no answer within the request deadline") from err
        total_ms = (time.perf_counter() - started) * 1000
        for stage, ms in result.stages_ms.items():
            metrics.stages.labels(stage.removesuffix("_ms")).observe(ms / 1000)
        if result.cold_start:
            metrics.cold_start.inc()
        elif result.model_version is not None:
            metrics.model_version.set(result.model_version)
        body = {"user_id": user_id, "request_id": uuid.uuid4().hex, "model_version": result.model_version,
                "cold_start": result.cold_start, "items": [item.__dict__ for item in result.items]}
        timing = ", ".join(f"{stage.removesuffix('_ms')};dur={ms:.3f}" for stage, ms in result.stages_ms.items())
        return Response(json.dumps(body), media_type="application/json",
                        headers={"Server-Timing": f"{timing}, total;dur={total_ms:.3f}",
                                 "X-Request-Id": body["request_id"]})

    return app
