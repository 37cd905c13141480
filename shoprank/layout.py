"""Every key and prefix of the object store, in one place.

Why one module: the zone split is a promise about prefixes. The private zone's prefixes hold raw user
data (ids, sessions, query text) and never leave it; the public prefixes hold only pseudonymised
features, models and what the public services write. Steps, the hourly refresh, serving, the CLI and
the zone rules all name a key through this module, so a new table is placed (and zoned) once.

The same keys serve a local folder and S3 (`shoprank.storage`); `open_for` picks the root.
"""

from __future__ import annotations

# ---- private zone: raw user data ---------------------------------------------------------------
CURATED_EVENTS_PREFIX = "curated/events"
CURATED_ITEMS_KEY = "curated/items/items.parquet"
CURATED_USERS_KEY = "curated/users/users.parquet"
GATE_STATE_PREFIX = "state/validation"  # the gate's accepted reference profile and volume history
GATE_STATE_HOURLY_PREFIX = "state/validation-hourly"

STAGING_PREFIX = "curated/staging"  # a batch as ingest staged it, before the gate and publishing
#: Which raw ids the shop's token issuer has named (raw id only: the private zone recomputes any
#: pseudonym from it), so events the API logged by pseudonym resolve back to the shopper.
IDENTITY_PREFIX = "curated/identity"
#: The erasure list: fingerprints of forgotten shoppers' raw ids, applied by every ingest, and each
#: erasure's report.
ERASURE_LIST_KEY = "curated/erasure/list.json"
ERASURE_REPORTS_PREFIX = "curated/erasure/reports"

# ---- public, written by the online API: pseudonyms and scrubbed queries only -------------------
SERVED_EVENTS_PREFIX = "served/events"  # what shoppers did with the served lists, hourly parquet
SERVED_REQUESTS_PREFIX = "served/requests"  # the served lists
SERVED_QUARANTINE_PREFIX = "served/quarantine"  # event-log segments and parts the roll moved aside

# ---- public: pseudonymised features (may cross to the compute zone) ----------------------------
FEATURES_PREFIX = "features"
#: What the private stage hands the public pipeline: per batch (`nightly`, `hourly`) the
#: pseudonymised interactions and impressions, the scrubbed search log and the catalogue, with a
#: manifest written last (`shoprank.features.crossing`). The only prefix a private task writes
#: outside the private ones.
CROSSING_PREFIX = "features/crossing"
#: What the public pipeline derives from a crossing: the Feast offline sources, the popular list,
#: the neighbours, the id of the key the online rows were made with.
DERIVED_PREFIX = "features/derived"
USER_STATS_KEY = "features/derived/user_stats.parquet"
ITEM_STATS_KEY = "features/derived/item_stats.parquet"
POPULAR_KEY = "features/derived/popular_items.parquet"
ITEM_NEIGHBOURS_KEY = "features/derived/item_neighbours.parquet"  # "bought together" per item, for session candidates
SIMILAR_ITEMS_KEY = "features/derived/similar_items.parquet"  # per item, similar by content and co-purchase
CATALOGUE_KEY = "features/derived/catalogue.parquet"  # the catalogue as of the night: what the API describes items by
SESSION_EVENTS_KEY = "features/derived/session_events.parquet"  # the session push source's batch side
IMPRESSION_EVENTS_KEY = "features/derived/impression_events.parquet"  # the impression push source's batch side
KEY_RECORD = "features/derived/pseudonym_key.json"  # which pseudonymisation key made the user rows (its id only)
#: Privacy choices by pseudonym, one object per shopper: opt-outs (written by the API for the token's
#: subject), the forgotten (written by the private zone's erasure), erasure requests queued by an
#: admin through the API (picked up by the private zone).
PRIVACY_PREFIX = "features/privacy"
OPT_OUT_PREFIX = "features/privacy/opt-out"
ERASED_PREFIX = "features/privacy/erased"
ERASURE_REQUESTS_PREFIX = "features/privacy/erasure-requests"


# ---- public, no user data: what merchandisers change during the day (the API and the CLI write it)
MERCHANDISING_PREFIX = "features/merchandising"
RULES_KEY = "features/merchandising/rules.toml"  # the served rule set (`serving.decision.rules`)
RULES_AUDIT_PREFIX = "features/merchandising/audit"  # one record per published rule set: who, when, what
AVAILABILITY_KEY = "features/merchandising/availability.json"  # stock and price, item by item
INTRADAY_ITEMS_KEY = "features/merchandising/items.json"  # items added or changed since the night


def crossing_prefix(batch: str) -> str:
    """Where one batch's crossing lives (`nightly`, `hourly`)."""
    return f"{CROSSING_PREFIX}/{batch}"


def staging_prefix(start: str, end: str) -> str:
    """Where ingest stages the batch of one data interval (ISO times; `:` dropped for file systems)."""
    return f"{STAGING_PREFIX}/{start.replace(':', '')}_{end.replace(':', '')}"


# ---- the model base path (`open_for(settings, "models")`): models, the search index, and
SEARCH_SERVING_KEY = "search_serving.json"  # what known shoppers' searches get tonight (ranker or a rule)
#: A training run's backup (`models.checkpoints`): weights and the epoch reached, deleted when the run
#: ends; what lets a train step killed on a spot node resume when it runs again. Outside every model's
#: folder, so TF Serving never sees it.
TRAINING_BACKUPS_PREFIX = "training-backups"


def training_backup_prefix(run_key: str) -> str:
    """Where one training run keeps its backup (`run_key`: the step's, one per dataset and configuration)."""
    return f"{TRAINING_BACKUPS_PREFIX}/{run_key}"

# ---- coordination (no user data) ---------------------------------------------------------------
LOCKS_PREFIX = "locks"
RUNS_PREFIX = "runs"  # each orchestrator run's verdict

#: Prefixes that hold raw identifiers or query text: only private-zone roles may read or write them.
PRIVATE_PREFIXES: tuple[str, ...] = ("raw/", "curated/", "state/")
#: Prefixes that hold only pseudonymised data or none: what may cross to the public zone.
PSEUDONYMISED_PREFIXES: tuple[str, ...] = ("features/", "served/")


def is_private(key: str) -> bool:
    """True for a key under a private-zone prefix."""
    return key.startswith(PRIVATE_PREFIXES)
