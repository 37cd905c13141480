"""One settings object decides local versus cluster; nothing else in the code branches on it.

Values come from a profile file (`shoprank/profiles/<name>.toml`, picked by SHOPRANK_PROFILE,
default `local`) and are overridden one by one by `SHOPRANK_<FIELD>` environment variables, which
is how Kubernetes (a ConfigMap fed from Terraform outputs) and the tests configure it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

PROFILES_DIR = Path(__file__).with_name("profiles")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Where everything lives. Paths that are not URLs resolve against `home`."""

    profile: str
    home: Path
    store_root: str
    model_base_path: str
    feast_online_store: str
    feast_registry: str
    kfp_host: str
    model_server_url: str
    model_server_grpc: str
    data_cache: str
    s3_endpoint_url: str = ""
    # Deadlines of the online API's downstream calls (seconds): past them a request is a clear 503.
    model_timeout_s: float = 0.5
    online_timeout_s: float = 0.25
    # How many of the sequence model's next items join a shopper's candidates: -1 as the served
    # ranker's card says (`n_sequence`), 0 none (the operator's switch, without a rollback), n that many.
    sequence_candidates: int = -1
    # The API's append log of events taken back (`POST /events`): a local disk (a volume in the
    # cluster), rolled every `event_roll_s` seconds into hourly parquet under the store's served/.
    event_log: str = "events/log"
    event_roll_s: float = 10.0
    # Where the rolled events go (served/ keys); empty: the store. The public features bucket in the
    # cluster (the log holds pseudonyms and scrubbed queries only); a scratch folder for a bench that
    # must not write into the store it reads.
    served_root: str = ""
    # The pipeline's train task on the cluster: its image (empty: the components' base image), its
    # resources, and the GPU node group it must land on: the node group's label and the taint that
    # keeps other pods off it, as infra/ declares them (a test reads both and holds them together).
    train_image: str = ""
    train_cpu: str = "8"
    train_memory: str = "32G"
    train_gpus: str = "1"
    gpu_node_selector: str = "shoprank.io/pool=gpu"
    gpu_toleration: str = "nvidia.com/gpu=true:NoSchedule"
    # The price of one GPU-hour on the GPU node group (USD), what each run's card and metadata
    # estimate its cost at. An assumption until set from the bill: about the spot price of one
    # g5.xlarge (1x A10G), whose on-demand price is about twice this.
    gpu_hour_usd: float = 0.5
    # Orchestration: the nightly DAG's schedule (empty: manual runs only), the hours after a run is
    # queued by which it must be done (else an alert), and the Airflow Connection holding the alert
    # webhook (empty: alerts go to a local log file and the console only).
    nightly_schedule: str = "@daily"
    nightly_deadline_h: float = 6.0
    alert_connection: str = ""
    kfp_poll_s: float = 30.0  # how often the Airflow trigger asks KFP for the run's state
    kfp_ui_host: str = ""  # the KFP UI as a browser reaches it, for the run links (empty: kfp_host)
    # The zone split on one machine: a folder with `private.env` and `public.env`, each zone's
    # credentials and settings (`shoprank zones up` writes it). Empty: one zone's worth of
    # settings for every process (the embedded default). See orchestration.zone_runner.
    zone_env_dir: str = ""
    # Where the Feast offline sources live (empty: the store's derived features). A local folder for
    # the public side when the store is an S3 server DuckDB cannot read without its httpfs extension.
    feast_offline_root: str = ""
    # How long the pipeline's first step waits for the private stage's crossing to be complete where
    # it reads it (on the cluster: replicated from the curated bucket, which takes a while).
    crossing_wait_s: float = 0.0
    # Who may call the API. The token signing key (Ed25519, PEM) exists in the private zone only,
    # where the issuer runs; the API holds the public keys it trusts (comma-separated: old and new
    # during a rotation) and the hashed server-to-server keys. Relative paths resolve under home.
    # The shop's web origins that may call the API from a browser (comma-separated, exact origins such
    # as https://shop.example); empty: none, a browser on another origin cannot read an answer.
    cors_origins: str = ""
    # The API's access log: `stdout` (one JSON line per request: route template, status, ms, caller,
    # subject pseudonym; never a path, a query string or a raw id) or empty for none.
    access_log: str = "stdout"
    token_signing_key: str = "secrets/token-signing.pem"
    token_public_keys: str = "keys/token-signing.pub.pem"
    api_keys_file: str = "keys/api_keys.json"
    # The API's own secret that signs request ids (shared by its workers and pods; public zone; not
    # the pseudonymisation key). Created on first use where it is a local file that does not exist.
    request_id_key: str = "keys/request-ids.key"
    # /metrics, /docs, /openapi.json and /readyz answer on this port only (the operator's), never on
    # the public one; 0: one port for everything (tests, a laptop).
    internal_port: int = 9090
    # Requests per minute per API key, per shopper (token subject), per anonymous client address
    # (0: no limit; behind a load balancer every anonymous request may share its address). Counted
    # in Redis when `rate_limit_redis` is set (shared by every worker and pod), else in the process.
    rate_limit_key_per_min: int = 60_000
    rate_limit_subject_per_min: int = 600
    rate_limit_anonymous_per_min: int = 0
    rate_limit_redis: str = ""
    # How often each API process re-reads the opt-out and erasure lists (seconds): a change takes
    # effect everywhere within this, and at once in the process that took it.
    privacy_poll_s: float = 10.0
    # How often each API process re-reads the merchandisers' feeds (stock and prices, items added
    # today, the rule set; seconds): a change serves everywhere within this.
    catalogue_poll_s: float = 2.0
    # A push to the `canary` label starts an experiment: this share of the shoppers of the model's route
    # on the canary for at most this long (0: no experiment; the canary then waits for a person).
    canary_share: float = 0.1
    canary_hours: float = 24.0
    # The feature job (features/engine/): `duckdb` in the step's process (spilling to disk past
    # `feature_engine_memory`), `spark` in the step's process on `spark_master` (local[n] here), or
    # `spark-operator`: the step submits a SparkApplication with the spark_* resources below, waits
    # for it, and reads its output from the store. The user-kNN's per-item cap (0: exact lists).
    feature_engine: str = "duckdb"
    feature_engine_memory: str = "4GB"
    spark_master: str = "local[2]"
    knn_item_buyers: int = 1000
    spark_namespace: str = "shoprank"
    spark_image: str = ""
    spark_service_account: str = "feature-job"
    spark_driver_cores: int = 1
    spark_driver_memory: str = "4g"
    spark_executor_instances: int = 4
    spark_executor_cores: int = 2
    spark_executor_memory: str = "8g"
    spark_timeout_s: float = 14400.0
    spark_poll_s: float = 15.0

    def resolve(self, value: str) -> str:
        """A local relative path becomes absolute under `home`; URLs pass through."""
        if "://" in value and not value.startswith("sqlite:///"):
            return value
        if value.startswith("sqlite:///"):
            return "sqlite:///" + str(self.home / value.removeprefix("sqlite:///"))
        return str(self.home / value) if not os.path.isabs(value) else value

    @property
    def store(self) -> str:
        return self.resolve(self.store_root)

    @property
    def models(self) -> str:
        return self.resolve(self.model_base_path)

    @property
    def cache_dir(self) -> Path:
        return Path(self.resolve(self.data_cache))

    @property
    def reports_dir(self) -> Path:
        """Human-facing reports (Data Docs, run summaries) always land on local disk too."""
        return self.home / "reports"

    @property
    def served(self) -> str:
        return self.resolve(self.served_root) if self.served_root else self.store

    @property
    def feast_offline(self) -> str:
        return self.resolve(self.feast_offline_root) if self.feast_offline_root else self.store

    @property
    def event_log_dir(self) -> Path:
        return Path(self.resolve(self.event_log))

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process or pod."""
        env = {f"SHOPRANK_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}
        env["SHOPRANK_HOME"] = str(self.home)
        return env


def load_settings(profile: str | None = None, **overrides: str) -> Settings:
    """Read the profile, then SHOPRANK_* variables, then explicit overrides (tests use these)."""
    name = profile or os.environ.get("SHOPRANK_PROFILE", "local")
    path = PROFILES_DIR / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
        raise ValueError(f"unknown settings profile {name!r}: expected one of {known}")
    values: dict[str, object] = tomllib.loads(path.read_text())
    for f in fields(Settings):
        env_value = os.environ.get(f"SHOPRANK_{f.name.upper()}")
        if env_value is not None and f.name not in ("profile", "home"):
            values[f.name] = env_value
    values.update(overrides)
    home = Path(os.environ.get("SHOPRANK_HOME", REPO_ROOT / ".shoprank")).resolve()
    values["home"] = Path(str(values.get("home", home))).resolve()
    values["profile"] = name
    known_fields = {f.name for f in fields(Settings)}
    unknown = set(values) - known_fields
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}")
    for f in fields(Settings):
        if f.type in ("float", "int") and isinstance(values.get(f.name), str):
            try:
                values[f.name] = (float if f.type == "float" else int)(values[f.name])  # type: ignore[arg-type]
            except ValueError as err:
                raise ValueError(f"setting {f.name} (SHOPRANK_{f.name.upper()}) must be a number, "
                                 f"got {values[f.name]!r}") from err
    return Settings(**values)  # type: ignore[arg-type]
