"""The online recommendation API the shop's front end calls (FastAPI; OpenAPI at /docs).

- `GET /recommend/{user_id}?k=10`: ranked items with a `request_id` and the model version;
- `GET /search?q=...&user_id=...&k=10`: items matching the query, personalised for a known user
  (the search ranker), else in lexical order; per item the signal that placed it;
- `POST /events`: what the shopper did (views, carts, purchases, searches, and impressions and
  clicks of the lists served here, by `request_id`), stored durably before the answer and pushed
  into the shopper's live session (`shoprank.serving.api.intake`); every answer of `/recommend` and
  `/search` is logged under its `request_id`, so the events can be joined to what was shown;
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

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from shoprank import clock
from shoprank.data.feedback import ALL_TYPES, FIELDS, MAX_POSITION, UnknownFields
from shoprank.search import MAX_QUERY_CHARS
from shoprank.serving.api.intake import MAX_BODY_BYTES, MAX_EVENTS, EventIntake
from shoprank.serving.api.metrics import ApiMetrics
from shoprank.serving.api.recommender import FeatureStoreError, NotReady, OnlineRecommender
from shoprank.serving.api.searcher import OnlineSearch
from shoprank.serving.model_server.client import ModelServerError
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


class SearchItem(BaseModel):
    item_id: str
    score: float
    signal: str
    category: str | None
    brand: str | None


class SearchResponse(BaseModel):
    query: str
    user_id: str | None
    request_id: str
    personalised: bool
    reason: str | None
    model_version: int | None
    index_version: int | None
    matched: int
    items: list[SearchItem]


class EventIn(BaseModel):
    """One event of a `POST /events` batch (documentation of the contract; checked per event)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    event_type: str
    user_id: str
    event_time: str | float
    item_id: str | None = None
    price: float | None = None
    quantity: int | None = None
    session_id: str | None = None
    query: str | None = None
    request_id: str | None = None
    position: int | None = None


def _events_schema() -> dict:
    item = EventIn.model_json_schema()
    item.pop("title", None)
    for name, text in FIELDS.items():
        item["properties"][name]["description"] = text
    item["properties"]["event_type"]["enum"] = list(ALL_TYPES)
    item["properties"]["position"] = {"type": "integer", "minimum": 1, "maximum": MAX_POSITION,
                                      "description": FIELDS["position"]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "minItems": 1, "maxItems": MAX_EVENTS, "items": item}}}}}


class Rejected(BaseModel):
    index: int
    event_id: str | None
    field: str | None
    reason: str


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejected]
    sessions_updated: int | None  # with ?sync=true: users whose session the push wrote
    session_error: str | None


class ErrorDetail(BaseModel):
    reason: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


def _unavailable(reason: str, message: str) -> HTTPException:
    return HTTPException(status_code=503, detail={"reason": reason, "message": message},
                         headers={"Retry-After": "1"})


def server_timing(stages_ms: dict[str, float]) -> str:
    """Stages (`<name>_ms`: milliseconds) as a Server-Timing header value."""
    return ", ".join(f"{stage.removesuffix('_ms')};dur={ms:.3f}" for stage, ms in stages_ms.items())


class AppState:
    """The recommender, loaded in a background thread; retried until it loads."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], OnlineRecommender],
                 retry_seconds: float = 5.0,
                 search_factory: Callable[[Settings, OnlineRecommender], OnlineSearch] | None = None) -> None:
        self.settings = settings
        self.factory = factory
        self.search_factory = search_factory or default_search_factory
        self.searcher: OnlineSearch | None = None
        self.search_error: str | None = "loading"
        self.retry_seconds = retry_seconds
        self.recommender: OnlineRecommender | None = None
        self.load_error: str | None = "loading"
        self.done = threading.Event()
        self.stopping = threading.Event()
        self._model_checked = 0.0
        self.model_error: str | None = "not checked yet"
        self.intake: EventIntake | None = None
        self.intake_error: str | None = "starting"

    def open_intake(self) -> None:
        """The event log: if its folder cannot be used, recommendations still serve and /events says why."""
        from shoprank.storage import open_for

        try:
            self.intake = EventIntake(self.settings.event_log_dir,
                                      open_for(self.settings, "served"))
            self.intake.start(self.settings.event_roll_s)
            self.intake_error = None
        except Exception as err:  # noqa: BLE001 - reported by every POST /events
            self.intake_error = f"{type(err).__name__}: {err}"
            print(f"online API: the event intake is unavailable: {self.intake_error}", flush=True)

    def load(self) -> None:
        """Build the recommender; on failure say why (readiness, every request) and try again."""
        while not self.stopping.is_set():
            try:
                self.recommender = self.factory(self.settings)
                self.load_error = None
                if self.intake is not None:
                    self.intake.attach_sessions(self.recommender.sessions, self.recommender.user_key)
                self._load_search()
                self.done.set()
                return
            except Exception as err:  # noqa: BLE001 - reported by /readyz and every request
                self.load_error = f"{type(err).__name__}: {err}"
                print(f"online API: could not load the recommender (retrying in {self.retry_seconds:.0f}s): "
                      f"{self.load_error}", flush=True)
                self.done.set()  # startup waits no longer: serve, not ready, while retrying
            self.stopping.wait(self.retry_seconds)

    def _load_search(self) -> None:
        """Search is an extra: if it cannot load, recommendations still serve and /search says why."""
        try:
            self.searcher = self.search_factory(self.settings, self.recommender)  # type: ignore[arg-type]
            self.search_error = None
        except Exception as err:  # noqa: BLE001 - reported by every /search request
            self.search_error = f"{type(err).__name__}: {err}"
            print(f"online API: search is unavailable: {self.search_error}", flush=True)

    def loaded_search(self) -> OnlineSearch:
        self.loaded()
        if self.searcher is None:
            raise _unavailable("not_ready", f"search is not loaded: {self.search_error}")
        return self.searcher

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


def default_search_factory(settings: Settings, recommender: OnlineRecommender) -> OnlineSearch:
    """Search over the newest published index, polled like the model versions."""
    import tempfile
    from pathlib import Path as LocalPath

    from shoprank.serving.api.searcher import LiveSearchIndex

    live = LiveSearchIndex(recommender.models, LocalPath(tempfile.gettempdir()) / "shoprank-search-index")
    live.refresh()
    return OnlineSearch(recommender, live.start())


def create_app(settings: Settings | None = None,
               factory: Callable[[Settings], OnlineRecommender] = default_factory,
               startup_wait_s: float = 120.0,
               search_factory: Callable[[Settings, OnlineRecommender], OnlineSearch] | None = None) -> FastAPI:
    """The app. Startup waits up to `startup_wait_s` for the recommender to load, so a worker takes
    connections only once it can answer (with several workers on one socket, a loading worker must
    not be handed requests); if loading fails or takes longer, it serves anyway and says not ready."""
    settings = settings or load_settings()
    metrics = ApiMetrics()
    state = AppState(settings, factory, search_factory=search_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.open_intake()
        threading.Thread(target=state.load, name="load-recommender", daemon=True).start()
        await asyncio.to_thread(state.done.wait, startup_wait_s)
        yield
        state.stopping.set()
        if state.intake is not None:
            state.intake.close()
        if state.searcher is not None:
            state.searcher.close()
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

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
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

    async def answer(route: str, call, deadline_s: float):
        """Await the online path under the request deadline; a failed or late downstream call is a
        503 whose reason names it, counted by route and reason."""
        try:
            async with asyncio.timeout(deadline_s):
                return await call
        except NotReady as err:
            reason, message = "not_ready", str(err)
        except FeatureStoreError as err:
            reason, message = "feature_store", str(err)
        except ModelServerError as err:
            reason, message = f"model_server_{err.reason}", str(err)
        except TimeoutError:
            reason, message = "timeout", "no answer within the request deadline"
        metrics.errors.labels(route, reason).inc()
        raise _unavailable(reason, message)

    def timed_json(body: dict, stages_ms: dict[str, float], total_ms: float) -> Response:
        """The JSON answer with its stages as Server-Timing and its request id as X-Request-Id."""
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json",
                        headers={"Server-Timing": f"{server_timing(stages_ms)}, total;dur={total_ms:.3f}",
                                 "X-Request-Id": body["request_id"]})

    def log_served(served: dict) -> None:
        """The served list under its request id; a failure to log never fails the answer."""
        if state.intake is None:
            return
        try:
            state.intake.log_served(served)
        except OSError as err:
            metrics.served_log_errors.inc()
            print(f"online API: could not log served list {served['request_id']}: {err}", flush=True)

    @app.post("/events", response_model=EventsResponse, openapi_extra=_events_schema(),
              responses={400: {"model": ErrorResponse, "description": "the body is not JSON"},
                         413: {"model": ErrorResponse, "description": f"over {MAX_BODY_BYTES} bytes or "
                                                                      f"{MAX_EVENTS} events"},
                         422: {"model": ErrorResponse, "description": "not a list, or unknown fields (the "
                                                                      "whole batch); bad events are listed in "
                                                                      "a 200's `rejected`"},
                         503: {"model": ErrorResponse, "description": "the event log cannot store; nothing stored"}})
    async def post_events(request: Request, sync: bool = Query(
            False, description="wait until the events are in the shoppers' online sessions (up to 1 s), so the "
                               "next /recommend sees them; otherwise answer once they are stored")) -> Response:
        intake = state.intake
        if intake is None:
            raise _unavailable("event_log", f"the event intake is not open: {state.intake_error}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise HTTPException(413, {"reason": "too_large", "message": f"the body is {int(declared):,} bytes, "
                                                                        f"at most {MAX_BODY_BYTES:,} allowed"})
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise HTTPException(413, {"reason": "too_large",
                                          "message": f"the body is over {MAX_BODY_BYTES:,} bytes"})
        try:
            events = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            message = "nested too deeply" if isinstance(err, RecursionError) else str(err)
            raise HTTPException(400, {"reason": "not_json", "message": f"the body is not JSON: {message}"}) from None
        if not isinstance(events, list) or not events:
            raise HTTPException(422, {"reason": "not_a_list", "message": "expected a non-empty JSON list of "
                                                                         f"events, got {type(events).__name__}"
                                                                         + (" (empty)" if events == [] else "")})
        if len(events) > MAX_EVENTS:
            raise HTTPException(413, {"reason": "too_many_events",
                                      "message": f"{len(events):,} events, at most {MAX_EVENTS:,} per batch"})
        try:
            result = await asyncio.to_thread(intake.accept, events, sync)
        except UnknownFields as err:
            metrics.events.labels("rejected").inc(len(events))
            raise HTTPException(422, {"reason": "unknown_fields", "message": str(err),
                                      "fields": {str(i): f for i, f in err.found.items()}}) from None
        except OSError as err:
            metrics.errors.labels("/events", "event_log").inc()
            raise _unavailable("event_log", f"the event log could not store the batch ({err}); nothing of it "
                                            "was stored, send it again") from None
        metrics.events.labels("accepted").inc(result.accepted)
        metrics.events.labels("duplicate").inc(result.duplicates)
        metrics.events.labels("rejected").inc(len(result.rejected))
        # a batch whose events are all refused is still answered 200: the outcome is per event (as
        # for a partly good batch), and the body says accepted 0 with every reason
        return Response(json.dumps(result.as_dict()), media_type="application/json",
                        headers={"Server-Timing": server_timing(result.stages_ms)})

    @app.get("/recommend/{user_id}", response_model=RecommendResponse,
             responses={503: {"model": ErrorResponse, "description": "a downstream service failed; see reason"}})
    async def recommend(user_id: str = Path(min_length=1, max_length=MAX_USER_ID, pattern=USER_ID_PATTERN),
                        k: int = Query(10, ge=1, le=MAX_K)) -> Response:
        recommender = state.loaded()
        started = time.perf_counter()
        result = await answer("/recommend/{user_id}", recommender.recommend(user_id, k),
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
        log_served({"request_id": body["request_id"], "served_at": clock.now_s(), "route": "recommend",
                    "user_id": user_id, "model_version": result.model_version,
                    "reason": "cold_start" if result.cold_start else None,
                    "items": [i.item_id for i in result.items], "scores": [i.score for i in result.items],
                    "sources": [i.candidate for i in result.items], "candidates": result.candidates,
                    "candidate_scores": result.candidate_scores, "candidate_sources": result.candidate_sources})
        return timed_json(body, result.stages_ms, total_ms)

    @app.get("/search", response_model=SearchResponse,
             responses={422: {"description": "empty query, query over the length limit, bad k or user_id"},
                        503: {"model": ErrorResponse, "description": "no index loaded or the feature store failed"}})
    async def search(q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S",
                                    description=f"the search text: not blank, at most {MAX_QUERY_CHARS} characters"),
                     user_id: str | None = Query(None, min_length=1, max_length=MAX_USER_ID, pattern=USER_ID_PATTERN),
                     k: int = Query(10, ge=1, le=MAX_K)) -> Response:
        searcher = state.loaded_search()
        started = time.perf_counter()
        result = await answer("/search", searcher.search(q, user_id, k),
                              settings.model_timeout_s + settings.online_timeout_s + 0.5)
        total_ms = (time.perf_counter() - started) * 1000
        for stage, ms in result.stages_ms.items():
            metrics.stages.labels(f"search_{stage.removesuffix('_ms')}").observe(ms / 1000)
        body = {"query": q, "user_id": user_id, "request_id": uuid.uuid4().hex, "personalised": result.personalised,
                "reason": result.reason, "model_version": result.model_version,
                "index_version": result.index_version, "matched": result.matched,
                "items": [item.__dict__ for item in result.items]}
        log_served({"request_id": body["request_id"], "served_at": clock.now_s(), "route": "search", "user_id": user_id,
                    "query": q, "model_version": result.model_version, "index_version": result.index_version,
                    "reason": result.reason, "items": [i.item_id for i in result.items],
                    "scores": [i.score for i in result.items], "sources": [i.signal for i in result.items]})
        return timed_json(body, result.stages_ms, total_ms)

    return app
