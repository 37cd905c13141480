"""The Feast repository's objects, for the Feast CLI and UI (`feast apply`, `feast ui`, ...).

The Feast template's shape: entities, sources, feature views and the feature service at module
level, found by `feast apply` in this folder. They are not defined here but taken from
`shoprank.features.definitions`, the one place the pipeline also registers them from, so the CLI
and the nightly run can never register two different versions of a view. Sources point at the
store of the active settings profile (`SHOPRANK_PROFILE`, `SHOPRANK_*`), the same settings
`shoprank feature-repo` wrote `feature_store.yaml` from.
"""

from shoprank.features.definitions import feature_objects
from shoprank.settings import load_settings

_settings = load_settings()
(user, item, user_stats, item_stats, ranker_features, session_push, user_session, impression_push,
 user_impressions) = feature_objects(_settings.store, _settings.s3_endpoint_url or None)
user_stats_source = user_stats.batch_source
item_stats_source = item_stats.batch_source
