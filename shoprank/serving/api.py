"""The online recommendation API the shop's front end calls (FastAPI; OpenAPI at /docs)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query

from shoprank.serving.client import ModelServerError
from shoprank.serving.recommend import OnlineRecommender
from shoprank.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="shoprank", description="What should this user see?")
    recommender = OnlineRecommender(settings or load_settings())

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/recommend/{user_id}")
    def recommend(user_id: str, k: int = Query(10, ge=1, le=100)) -> dict:
        try:
            recs = recommender.recommend(user_id, k)
        except ModelServerError as err:
            raise HTTPException(status_code=503, detail=str(err)) from err
        return {"user_id": user_id, "items": [r.__dict__ for r in recs]}

    return app
