"""The Feast objects: entities, feature views over the pseudonymised snapshots, the feature service.

Defined once as a function of where the offline sources live, so the same definitions serve the
local parquet folder and S3; `feature_repo/definitions.py` calls this for the Feast CLI.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float64, Int64, String

from shoprank.features.session_inputs import SESSION_WINDOW
from shoprank.layout import (  # noqa: F401 - the Feast sources' keys, named here for their users
    IMPRESSION_EVENTS_KEY,
    ITEM_NEIGHBOURS_KEY,
    ITEM_STATS_KEY,
    KEY_RECORD,
    POPULAR_KEY,
    SESSION_EVENTS_KEY,
    USER_STATS_KEY,
)

FEATURE_SERVICE = "ranker_features"
# Session features: pushed by the event intake (`POST /events`), never materialised from a batch job.
SESSION_VIEW = "user_session"
SESSION_PUSH = "session_push"
# What each shopper was shown and clicked lately (the decision stage's suppression): pushed by the
# intake too, kept for IMPRESSION_WINDOW, erased with the shopper's other rows.
IMPRESSION_VIEW = "user_impressions"
IMPRESSION_PUSH = "impression_push"
IMPRESSION_WINDOW = timedelta(days=30)
TTL = timedelta(days=120)

user = Entity(name="user", join_keys=["user_key"], value_type=ValueType.STRING,
              description="A shopper, by keyed pseudonym (never the raw id).")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A catalogue item.")

USER_SCHEMA = [
    Field(name="user_n_purchases", dtype=Int64),
    Field(name="user_n_baskets", dtype=Int64),
    Field(name="user_n_items", dtype=Int64),
    Field(name="user_days_since_last", dtype=Float64),
    Field(name="user_avg_price", dtype=Float64),
    Field(name="user_n_interactions", dtype=Int64),
    Field(name="user_top_items", dtype=Array(String)),
    Field(name="user_top_item_scores", dtype=Array(Float64)),
    Field(name="user_top_item_days", dtype=Array(Float64)),
    Field(name="user_top_categories", dtype=Array(String)),
    Field(name="user_top_item_counts", dtype=Array(Int64)),
    Field(name="user_top_category_shares", dtype=Array(Float64)),
    Field(name="user_n_baskets_30d", dtype=Int64),
    Field(name="user_cooc_items", dtype=Array(String)),
    Field(name="user_cooc_scores", dtype=Array(Float64)),
    Field(name="user_top_item_decayed", dtype=Array(Float64)),
    Field(name="user_top_item_first_days", dtype=Array(Float64)),
    Field(name="user_history_days", dtype=Float64),
    Field(name="user_knn_items", dtype=Array(String)),
    Field(name="user_knn_scores", dtype=Array(Float64)),
    # The sequence model's input: the distinct items bought, in first-purchase order (oldest first,
    # ties by id), the last SEQUENCE_ITEMS of them. Online and offline read the same list.
    Field(name="user_item_sequence", dtype=Array(String)),
]
ITEM_SCHEMA = [
    Field(name="item_category", dtype=String),
    Field(name="item_price", dtype=Float64),
    Field(name="item_pop_7d", dtype=Int64),
    Field(name="item_pop_30d", dtype=Int64),
    Field(name="item_buyers_30d", dtype=Int64),
    Field(name="item_repeat_rate", dtype=Float64),
    Field(name="item_interactions_7d", dtype=Int64),
    Field(name="item_pop_7d_per_100k", dtype=Float64),
    Field(name="item_buyers_30d_per_10k", dtype=Float64),
    Field(name="item_repeat_pct", dtype=Float64),
]


IMPRESSION_SCHEMA = [
    Field(name="shown_items", dtype=Array(String)),  # one entry per impression, newest first
    Field(name="shown_at", dtype=Array(Float64)),  # Unix seconds
    Field(name="clicked_items", dtype=Array(String)),
    Field(name="clicked_at", dtype=Array(Float64)),
]
SESSION_SCHEMA = [
    Field(name="session_viewed", dtype=Array(String)),  # newest first
    Field(name="session_viewed_at", dtype=Array(Float64)),  # Unix seconds, one per viewed item
    Field(name="session_carted", dtype=Array(String)),
    Field(name="session_carted_at", dtype=Array(Float64)),
    Field(name="session_last_query", dtype=String),
    Field(name="session_last_query_at", dtype=Float64),
]

# The per-user list features: inputs to the cross features, not model inputs themselves.
USER_LIST_FEATURES = [f.name for f in USER_SCHEMA if isinstance(f.dtype, Array)]


def feature_objects(store_uri: str, s3_endpoint: str | None = None) -> list:
    """Everything `feast apply` registers, with sources under the store's features/ prefix: the batch views
    and their service, then the session push source and its view."""
    base = store_uri.rstrip("/")
    user_source = FileSource(name="user_stats_source", path=f"{base}/{USER_STATS_KEY}",
                             timestamp_field="event_timestamp", s3_endpoint_override=s3_endpoint or None)
    item_source = FileSource(name="item_stats_source", path=f"{base}/{ITEM_STATS_KEY}",
                             timestamp_field="event_timestamp", s3_endpoint_override=s3_endpoint or None)
    user_stats = FeatureView(name="user_stats", entities=[user], ttl=TTL, schema=USER_SCHEMA,
                             source=user_source, online=True, tags={"zone": "public", "pii": "pseudonymised"})
    item_stats = FeatureView(name="item_stats", entities=[item], ttl=TTL, schema=ITEM_SCHEMA,
                             source=item_source, online=True, tags={"zone": "public"})
    service = FeatureService(name=FEATURE_SERVICE, features=[user_stats, item_stats],
                             description="What the ranker sees, offline (training) and online (serving).")
    session_source = PushSource(name=SESSION_PUSH, batch_source=FileSource(
        name="session_events_source", path=f"{base}/{SESSION_EVENTS_KEY}", timestamp_field="event_timestamp",
        s3_endpoint_override=s3_endpoint or None))
    user_session = FeatureView(name=SESSION_VIEW, entities=[user], ttl=SESSION_WINDOW, schema=SESSION_SCHEMA,
                               source=session_source, online=True,
                               tags={"zone": "public", "pii": "pseudonymised", "written_by": "event intake"})
    impression_source = PushSource(name=IMPRESSION_PUSH, batch_source=FileSource(
        name="impression_events_source", path=f"{base}/{IMPRESSION_EVENTS_KEY}", timestamp_field="event_timestamp",
        s3_endpoint_override=s3_endpoint or None))
    user_impressions = FeatureView(name=IMPRESSION_VIEW, entities=[user], ttl=IMPRESSION_WINDOW,
                                   schema=IMPRESSION_SCHEMA, source=impression_source, online=True,
                                   tags={"zone": "public", "pii": "pseudonymised", "written_by": "event intake"})
    return [user, item, user_stats, item_stats, service, session_source, user_session, impression_source,
            user_impressions]
