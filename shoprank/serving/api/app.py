"""The online recommendation API the shop's front end calls (FastAPI).

On the public port:
- `GET /recommend?k=10`: ranked items for the shopper of the bearer token (anonymous: the popular
  items), with a signed `request_id` and the model version;
- `GET /search?q=...&k=10`: items matching the query, personalised for a known shopper (the search
  ranker), else in lexical order; per item the signal that placed it;
- `POST /events`: what the shopper did (views, carts, purchases, searches, and impressions and
  clicks of the lists served here, by `request_id`), stored durably before the answer and pushed
  into the shopper's live session (`shoprank.serving.api.intake`); every answer of `/recommend` and
  `/search` is logged under its `request_id`, so the events can be joined to what was shown;
- `GET /similar/{item_id}`, `GET /bought-together/{item_id}`: items about an item;
- `PUT /catalogue/availability`, `PUT /catalogue/items`, `GET|PUT /merchandising/rules` (scope
  `admin`): stock, items added today and the rule set, live within seconds
  (`shoprank.serving.api.routes.catalogue`); every list goes through the decision stage;
- `/privacy/opt-out` (the shopper's token) and `/admin/privacy/forget` (scope `admin`);
- `GET /healthz`: the process is alive.
Who may call what: `shoprank.serving.api.auth`. On the internal port (`internal_port`) only:
- `GET /readyz`: 200 only once item features are loaded and the model server answers for the
  `stable` ranker (what a Kubernetes readiness probe asks);
- `GET /metrics`: Prometheus metrics (requests, latency by route and stage, errors by reason,
  served model version, age of the online features); `/docs` and `/openapi.json`.

Browsers on the origins the settings name (`cors_origins`) may call it; no other origin may.

Every downstream call has a deadline (settings `model_timeout_s`, `online_timeout_s`); when one fails
or times out the answer is a 503 whose body names the reason, never a hang or a bare 500. The app
starts answering at once and loads its features in the background, so probes can tell "starting"
(503 from /readyz) from "dead" (no answer).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from shoprank.serving.api.auth import ROUTE_ACCESS
from shoprank.serving.api.recommender import OnlineRecommender
from shoprank.serving.api.routes import catalogue, events, health, lists, privacy
from shoprank.serving.api.searcher import OnlineSearch
from shoprank.serving.api.state import AppState, RequestMetrics, default_factory
from shoprank.settings import Settings, load_settings


def create_app(settings: Settings | None = None,
               factory: Callable[[Settings], OnlineRecommender] = default_factory,
               startup_wait_s: float = 120.0,
               search_factory: Callable[[Settings, OnlineRecommender], OnlineSearch] | None = None) -> FastAPI:
    """The app. Startup waits up to `startup_wait_s` for the recommender to load, so a worker takes
    connections only once it can answer (with several workers on one socket, a loading worker must
    not be handed requests); if loading fails or takes longer, it serves anyway and says not ready."""
    state = AppState(settings or load_settings(), factory, search_factory=search_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.privacy.start()
        state.open_intake()
        threading.Thread(target=state.load, name="load-recommender", daemon=True).start()
        await asyncio.to_thread(state.done.wait, startup_wait_s)
        yield
        state.stopping.set()
        state.privacy.stop()
        if state.intake is not None:
            state.intake.close()
        if state.searcher is not None:
            state.searcher.close()
        if state.recommender is not None:
            state.recommender.items.stop()
            await state.recommender.client.close()

    app = FastAPI(title="shoprank", description="What should this user see?", lifespan=lifespan)
    app.state.shoprank = state
    app.add_middleware(RequestMetrics, metrics=state.metrics,
                       access_log=sys.stdout if state.settings.access_log == "stdout" else None)
    origins = [o.strip() for o in state.settings.cors_origins.split(",") if o.strip()]
    if origins:  # only the shop's own pages; no wildcard, no credentials by cookie
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization", "X-API-Key"], max_age=600)
    for module in (health, lists, catalogue, events, privacy):
        app.include_router(module.router)
    undeclared = [f"{m} {r.path}" for r in app.routes if isinstance(r, APIRoute) for m in r.methods
                  if (m, r.path) not in ROUTE_ACCESS]
    if undeclared:  # a route nobody owns, with no scope decided, is never served
        raise RuntimeError(f"routes without an owner and a scope in auth.ROUTE_ACCESS: {undeclared}")
    if state.settings.internal_port:
        app.add_middleware(PortSplit, internal_port=state.settings.internal_port)
    return app


#: What the operator's port serves (and the public one never does).
INTERNAL_PATHS = frozenset({"/metrics", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
BOTH_PORTS = frozenset({"/healthz"})


class PortSplit:
    """Each path on its own port: the internal ones only on `internal_port`, the rest only on the
    public one; the other port answers 404, as if the route did not exist there. Outermost, so a
    refused request costs no routing, no metrics label and no credential check."""

    def __init__(self, app, internal_port: int) -> None:
        self.app, self.internal_port = app, internal_port

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in BOTH_PORTS:
            server = scope.get("server")
            on_internal = server is not None and server[1] == self.internal_port
            if on_internal != (scope["path"] in INTERNAL_PATHS):
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body",
                            "body": b'{"detail":{"reason":"not_found","message":"no such route on this port"}}'})
                return
        await self.app(scope, receive, send)
