"""Shared fixtures: an isolated SHOPRANK_HOME per test and small slices of the real data sets."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REES46_CSV = SHARED / "rees46-sample" / "2019-Oct-head.csv"


def _tafeng_zip() -> Path:
    """The shared copy beside the checkout, else the project's own verified download (cached)."""
    from shoprank.data.fetch import SHARED_TAFENG, tafeng_zip

    if SHARED_TAFENG.exists():
        return SHARED_TAFENG
    return tafeng_zip(Path(tempfile.gettempdir()) / "shoprank-test-cache")


TAFENG_ZIP = _tafeng_zip()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Airflow reads its home at import: keep the test session's Airflow out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="shoprank-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SHOPRANK_HOME with the local profile; no SHOPRANK_* leaks in from the caller."""
    for key in list(os.environ):
        if key.startswith("SHOPRANK_") and key != "SHOPRANK_TAFENG_ZIP":
            monkeypatch.delenv(key)
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY", "test-key")
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tafeng_events() -> pd.DataFrame:
    """All Ta Feng events as canonical rows (817,741), read once per session."""
    from shoprank.data.sources import open_source

    return pd.concat(open_source("tafeng", TAFENG_ZIP).events(), ignore_index=True)


@pytest.fixture(scope="session")
def tafeng_slice_dir(tmp_path_factory: pytest.TempPathFactory, tafeng_events: pd.DataFrame) -> Path:
    """A canonical folder with every 8th Ta Feng customer (about 4k customers, full time range)."""
    import pyarrow.parquet as pq

    from shoprank.data.schema import EVENTS, ITEMS, USERS, conform
    from shoprank.data.sources import open_source

    out = tmp_path_factory.mktemp("tafeng-slice")
    ids = tafeng_events["user_id"]
    events = tafeng_events[ids.str[-3:].astype(int) % 8 == 0]
    source = open_source("tafeng", TAFENG_ZIP)
    items = source.items()
    users = source.users()
    for day, part in events.groupby(events["event_time"].dt.strftime("%Y-%m-%d")):
        folder = out / "events" / f"date={day}"
        folder.mkdir(parents=True)
        pq.write_table(conform(part, EVENTS), folder / "part-0.parquet")
    (out / "items").mkdir()
    (out / "users").mkdir()
    pq.write_table(conform(items, ITEMS), out / "items" / "part-0.parquet")
    kept = users[users["user_id"].isin(set(events["user_id"]))]
    pq.write_table(conform(kept, USERS), out / "users" / "part-0.parquet")
    return out


def free_port() -> int:
    """A TCP port nobody listens on right now (for servers the tests start)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def redis_server(directory: Path):
    """A real redis-server on a free loopback port: yields (redis://127.0.0.1:PORT, process)."""
    import subprocess
    import time

    import redis

    from tests.services import require

    binary = require("redis-server", "test against Redis")

    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(directory)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on loopback (moto's server), shared by the storage and model-cache tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, tmp_path, monkeypatch):
    """A fresh bucket on the S3 server: (s3://bucket/prefix, endpoint)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    bucket = f"shoprank-{tmp_path.name.lower().replace('_', '-')[:40]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/prefix", s3_endpoint


def tiny_examples(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Labelled rows whose label depends on repurchase features, so a model can learn something."""
    import numpy as np

    from shoprank.features.derived import NUMERIC_FEATURES

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.random(n) for name in NUMERIC_FEATURES})
    frame["ui_score"] = rng.integers(0, 5, n).astype(float)
    frame["item_id"] = [f"i{k}" for k in rng.integers(0, 40, n)]
    frame["item_category"] = [f"c{k}" for k in rng.integers(0, 5, n)]
    frame["label"] = (frame["ui_score"] + rng.normal(0, 1, n) > 2.5).astype(int)
    # candidate lists of 20 rows, as the listwise loss reads them
    frame["user_key"] = [f"u{seed}_{k // 20}" for k in range(n)]
    frame["event_timestamp"] = pd.Timestamp("2026-01-01", tz="UTC")
    return frame


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ranker SavedModel trained for one epoch on tiny rows (shared by serving tests)."""
    from shoprank.models.card import ModelCard
    from shoprank.models.export import export_saved_model
    from shoprank.models.train import TrainConfig, train_ranker

    result = train_ranker(tiny_examples(), tiny_examples(200, seed=1), TrainConfig(epochs=1, batch_size=128), verbose=0)
    return export_saved_model(result.model, tmp_path_factory.mktemp("model") / "ranker", ModelCard(model="ranker"))
