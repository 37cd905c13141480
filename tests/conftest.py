"""Shared fixtures: an isolated SHOPRANK_HOME per test and small slices of the real data sets."""

from __future__ import annotations

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
    return frame


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ranker SavedModel trained for one epoch on tiny rows (shared by serving tests)."""
    from shoprank.models.export import export_saved_model
    from shoprank.models.train import TrainConfig, train_ranker

    result = train_ranker(tiny_examples(), tiny_examples(200, seed=1), TrainConfig(epochs=1, batch_size=128), verbose=0)
    return export_saved_model(result.model, tmp_path_factory.mktemp("model") / "ranker", {"model": "ranker"})
