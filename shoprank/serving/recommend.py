"""The online path: user id -> Feast online features -> candidates -> ranker on the model server.

Candidates are the user's own top items, the items bought together with the user's history, the
items the most similar shoppers bought and the popular items (the same `user_candidates` the
training set uses, so online candidates are the offline ones); scores come from the model server
over the TF Serving API; users the feature store does not know get the popular items (cold start),
labelled as such.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from shoprank.features import store as feast_store
from shoprank.features.calendar import load_calendar
from shoprank.features.derived import add_model_features, model_inputs
from shoprank.features.pseudonymise import load_key, pseudonym
from shoprank.features.training_set import CANDIDATE_LISTS, TrainingSetConfig, user_candidates
from shoprank.orchestration.steps import MODEL_NAME, POPULAR_KEY
from shoprank.serving.client import GrpcClient, RestClient
from shoprank.settings import Settings

USER_CANDIDATE_FEATURES = [f"user_stats:{name}" for name in (*CANDIDATE_LISTS, "user_n_purchases")]


@dataclass
class Recommendation:
    item_id: str
    score: float | None
    source: str  # "ranker" or "popular" (cold start)
    category: str | None = None


class OnlineRecommender:
    def __init__(self, settings: Settings, protocol: str = "rest", candidates: TrainingSetConfig | None = None) -> None:
        self.settings = settings
        self.key = load_key(settings.home)
        self.fs = feast_store.feature_store(settings)
        self.views = feast_store.service_views(self.fs)  # registry read once, not per request
        store = feast_store.object_store(settings)
        popular = pq.read_table(io.BytesIO(store.get_bytes(POPULAR_KEY))).to_pandas()
        self.candidate_config = candidates or TrainingSetConfig()
        self.calendar = load_calendar()
        self.popular = popular.sort_values("rank")["item_id"].head(self.candidate_config.n_popular).tolist()
        self._inputs: tuple[float, list[str]] | None = None
        self.client = (GrpcClient(settings.model_server_grpc) if protocol == "grpc"
                       else RestClient(settings.model_server_url))

    def signature_inputs(self, max_age_s: float = 30.0) -> list[str]:
        """The served signature's input names, re-read at most every `max_age_s` (new versions)."""
        now = time.monotonic()
        if self._inputs is None or now - self._inputs[0] > max_age_s:
            self._inputs = (now, self.client.input_names(MODEL_NAME))
        return self._inputs[1]

    def user_features(self, user_key: str) -> dict | None:
        row = self.fs.get_online_features(features=USER_CANDIDATE_FEATURES,
                                          entity_rows=[{"user_key": user_key}]).to_dict()
        return None if row["user_n_purchases"][0] is None else {k: v[0] for k, v in row.items()}

    def recommend(self, user_id: str, k: int = 10) -> list[Recommendation]:
        user_key = pseudonym(user_id, self.key)
        user = self.user_features(user_key)
        if user is None:
            return [Recommendation(item, None, "popular") for item in self.popular[:k]]
        config = self.candidate_config
        items = user_candidates(user, self.popular, config)
        # the window this recommendation is for starts now and is as long as the training labels'
        features = add_model_features(feast_store.online_features(self.settings, user_key, items, fs=self.fs,
                                                                 views=self.views),
                                      config.label_days, at=pd.Timestamp.now(tz="UTC"), periods=self.calendar)
        # Send what the served version's signature asks for: a model trained before a feature was
        # added keeps working while the new one rolls out.
        wanted = self.signature_inputs()
        inputs = model_inputs(features)
        scores = self.client.predict(MODEL_NAME, {k: inputs[k] for k in wanted})["score"]
        ranked = features.assign(score=scores).sort_values(["score", "item_id"], ascending=[False, True]).head(k)
        return [Recommendation(r.item_id, float(r.score), "ranker", r.item_category) for r in ranked.itertuples()]
