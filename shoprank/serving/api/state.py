"""What one API process holds: the recommender and search (loaded in the background and retried),
the event intake, the metrics; and the helpers every route answers through."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, Response

from shoprank.serving.api.auth import Gatekeeper
from shoprank.serving.api.experiments import LiveExperiments
from shoprank.serving.api.intake import EventIntake
from shoprank.serving.api.metrics import ApiMetrics
from shoprank.serving.api.privacy import PrivacyLists
from shoprank.serving.api.recommender import FeatureStoreError, NotReady, OnlineRecommender
from shoprank.serving.api.searcher import LiveSearchIndex, OnlineSearch
from shoprank.serving.api.users import ANY_KEY, recorded_key_id
from shoprank.serving.model_server.client import ModelServerError
from shoprank.settings import Settings
from shoprank.storage import open_for

#: What a caller is told for each reason a request could not be answered. The exception behind it
#: (a table name, a host, a path, a key id) goes to the server's log only: a caller learns the
#: reason, never the internals.
PUBLIC_MESSAGES = {
    "not_ready": "the service is still loading or cannot load; try again shortly",
    "feature_store": "the feature store did not answer; try again shortly",
    "timeout": "no answer within the request deadline",
    "event_log": "the event log could not store the batch; nothing of it was stored, send it again",
    "privacy_store": "the privacy choice could not be stored; nothing changed, send it again",
}


def unavailable(reason: str, detail: str = "", route: str = "") -> HTTPException:
    """A 503 naming the reason; `detail` (the internal story) goes to the server's log."""
    if detail:
        print(f"online API: {route or 'request'}: 503 {reason}: {detail}", flush=True)
    message = PUBLIC_MESSAGES.get(reason) or PUBLIC_MESSAGES.get(reason.split("_", 1)[0]) \
        or "a service this answer needs is unavailable; try again shortly"
    if reason.startswith("model_server"):
        message = "the model server did not answer; try again shortly"
    return HTTPException(status_code=503, detail={"reason": reason, "message": message},
                         headers={"Retry-After": "1"})


def server_timing(stages_ms: dict[str, float]) -> str:
    """Stages (`<name>_ms`: milliseconds) as a Server-Timing header value."""
    return ", ".join(f"{stage.removesuffix('_ms')};dur={ms:.3f}" for stage, ms in stages_ms.items())


class AppState:
    """The recommender, loaded in a background thread; retried until it loads."""

    def __init__(self, settings: Settings, factory: Callable[[Settings], OnlineRecommender],
                 retry_seconds: float = 5.0,
                 search_factory: Callable[[Settings, OnlineRecommender], OnlineSearch] | None = None,
                 metrics: ApiMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ApiMetrics()
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
        self.privacy = PrivacyLists(open_for(settings), settings.privacy_poll_s)
        self.gate = Gatekeeper(settings, self.privacy)
        self.experiments = LiveExperiments(open_for(settings, "models"))

    def open_intake(self) -> None:
        """The event log: if its folder cannot be used, recommendations still serve and /events says why."""

        try:
            self.intake = EventIntake(self.settings.event_log_dir,
                                      open_for(self.settings, "served"))
            self.intake.erased = lambda: self.privacy.erased
            self.intake.start(self.settings.event_roll_s)
            self.intake_error = None
        except Exception as err:  # noqa: BLE001 - reported by every POST /events
            self.intake_error = f"{type(err).__name__}: {err}"
            print(f"online API: the event intake is unavailable: {self.intake_error}", flush=True)

    def load(self) -> None:
        """Build the recommender; on failure say why (readiness, every request) and try again."""
        while not self.stopping.is_set():
            try:
                self.experiments.refresh()
                self.recommender = self.factory(self.settings)
                self.load_error = None
                if self.intake is not None:
                    shoppers = self.recommender.context.shoppers
                    self.intake.attach_sessions(self.recommender.sessions, self.recommender.key_id,
                                                [shoppers.impression_rows] if shoppers.impression_rows else [])
                self._load_search()
                self.experiments.start()
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
            raise unavailable("not_ready", f"search is not loaded: {self.search_error}", "/search")
        return self.searcher

    def named_key_id(self) -> str:
        """The key id to store with a pseudonym a server-to-server caller names: the key the online store
        was materialised with (the one such callers are given pseudonyms under). `ANY_KEY` when the
        store has no key record (features from before key ids): never None, which the log's readers
        take for a raw id. Reads the store while the recommender is not loaded."""
        key_id = self.recommender.key_id() if self.recommender is not None else recorded_key_id(self.settings)
        return key_id or ANY_KEY

    def loaded(self) -> OnlineRecommender:
        if self.recommender is None:
            raise unavailable("not_ready", f"the recommender is not loaded: {self.load_error}", "/recommend")
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
    """Requests and latency by route and status, and the access log, as plain ASGI middleware:
    Starlette's `BaseHTTPMiddleware` (`@app.middleware("http")`) measured 0.8 ms of CPU per request
    here, more than the rest of the framework together.

    The access log is one JSON line per request: time, method, the route's template (never the
    path, which may hold an id, nor the query string, which may hold search text), status,
    milliseconds, and the caller and subject pseudonym where the request was authenticated."""

    def __init__(self, app, metrics: ApiMetrics, access_log=None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log  # a text stream (stdout), or None for none

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
            seconds = time.perf_counter() - started
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(seconds)
            if self.access_log is not None:
                who = scope.get("state") or {}
                self.access_log.write(json.dumps({
                    "ts": round(time.time(), 3), "method": scope.get("method"), "route": path, "status": status,
                    "ms": round(seconds * 1000, 2), "caller": who.get("caller"), "subject": who.get("subject")},
                    separators=(",", ":")) + "\n")
                self.access_log.flush()  # a line per request as it ends (a pod's stdout is a pipe: block-buffered)


def default_factory(settings: Settings) -> OnlineRecommender:
    return OnlineRecommender(settings).load()


def default_search_factory(settings: Settings, recommender: OnlineRecommender) -> OnlineSearch:
    """Search over the newest published index, polled like the model versions."""
    import tempfile
    from pathlib import Path as LocalPath


    live = LiveSearchIndex(recommender.models, LocalPath(tempfile.gettempdir()) / "shoprank-search-index")
    live.refresh()
    return OnlineSearch(recommender.context, live.start())




def timed_json(body: dict, stages_ms: dict[str, float], total_ms: float) -> Response:
    """The JSON answer with its stages as Server-Timing and its request id as X-Request-Id."""
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/json",
                    headers={"Server-Timing": f"{server_timing(stages_ms)}, total;dur={total_ms:.3f}",
                             "X-Request-Id": body["request_id"]})


async def answer(state: AppState, route: str, call, deadline_s: float):
    """Await the online path under the request deadline; a failed or late downstream call is a 503
    whose reason names it, counted by route and reason."""
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
    state.metrics.errors.labels(route, reason).inc()
    raise unavailable(reason, message, route)


def log_served(state: AppState, served: dict) -> None:
    """The served list under its request id; a failure to log never fails the answer."""
    if state.intake is None:
        return
    try:
        state.intake.log_served(served)
    except OSError as err:
        state.metrics.served_log_errors.inc()
        print(f"online API: could not log served list {served['request_id']}: {err}", flush=True)
