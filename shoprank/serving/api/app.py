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

from shoprank.serving.api.recommender import OnlineRecommender
from shoprank.serving.api.routes import events, health, lists
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
    app.add_middleware(RequestMetrics, metrics=state.metrics,
                       access_log=sys.stdout if state.settings.access_log == "stdout" else None)
    origins = [o.strip() for o in state.settings.cors_origins.split(",") if o.strip()]
    if origins:  # only the shop's own pages; no wildcard, no credentials by cookie
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization", "X-API-Key"], max_age=600)
    for module in (health, lists, events):
        app.include_router(module.router)
    return app
