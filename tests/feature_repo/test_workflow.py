"""The Feast repository in `feature_repo/`, used the way the Feast template's `test_workflow.py` uses
its repo: `feast apply`, `feast materialize-incremental`, `feast feature-views list` through the
CLI, then `get_historical_features` and `get_online_features` through the SDK, and `feast ui`
serving the registry. The repo's objects are the pipeline's (shoprank.features.definitions)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from shoprank.features import store as feast_store
from shoprank.features.engine.frames import feature_snapshots
from shoprank.features.snapshots import snapshot_times
from shoprank.settings import load_settings
from tests.conftest import free_port
from tests.features.test_snapshots import ITEMS, _interactions

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
FEAST = str(Path(sys.executable).with_name("feast"))


@pytest.fixture
def repo(home, tmp_path):
    """A copy of feature_repo/ with its feature_store.yaml written by `shoprank feature-repo`."""
    settings = load_settings()
    # the test's purchases moved to the last weeks: `materialize-incremental` starts at now - TTL
    today = pd.Timestamp.now(tz="UTC").normalize()
    events = _interactions()
    events["event_time"] += today - pd.Timestamp("2024-02-08", tz="UTC")
    times = snapshot_times(today, 3)
    users, items = feature_snapshots(events, ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    copy = shutil.copytree(REPO, tmp_path / "feature_repo", ignore=shutil.ignore_patterns("feature_store.yaml",
                                                                                           "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "shoprank.cli", "feature-repo", "--repo", str(copy)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return copy, times


def _feast(repo: Path, *args: str) -> str:
    done = subprocess.run([FEAST, *args], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FEAST_USAGE": "False"})
    assert done.returncode == 0, f"feast {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_cli_and_sdk_workflow(repo):
    path, times = repo
    config = (path / "feature_store.yaml").read_text()
    assert "registry_type: file" in config and "type: sqlite" in config and "do not edit" in config
    _feast(path, "apply")
    views = _feast(path, "feature-views", "list")
    assert "user_stats" in views and "item_stats" in views
    assert "ranker_features" in _feast(path, "feature-services", "list")
    # up to and including the newest snapshot (the window's end is exclusive), as the pipeline does
    _feast(path, "materialize-incremental", (times[-1] + pd.Timedelta(seconds=1)).isoformat())

    from feast import FeatureStore

    fs = FeatureStore(repo_path=str(path))
    service = fs.get_feature_service("ranker_features")
    entity = pd.DataFrame({"user_key": ["u1", "u1"], "item_id": ["z", "z"],
                           "event_timestamp": [times[1], times[2]]})
    history = fs.get_historical_features(entity_df=entity, features=service).to_df().sort_values("event_timestamp")
    assert "z" not in list(history.iloc[0]["user_top_items"])  # point in time: z was bought at times[1]
    assert "z" in list(history.iloc[1]["user_top_items"])
    online = fs.get_online_features(features=service, entity_rows=[{"user_key": "u1", "item_id": "a"}]).to_dict()
    assert online["user_n_purchases"] == [4] and online["item_category"] == ["x"]  # the newest snapshot
    # the pipeline's own reader sees what the CLI materialised: one store, one registry
    assert feast_store.online_features(load_settings(), "u1", ["a"]).loc[0, "user_n_purchases"] == 4


def test_feast_ui_serves_the_registry(repo):
    path, _ = repo
    _feast(path, "apply")
    port = free_port()
    ui = subprocess.Popen([FEAST, "ui", "--host", "127.0.0.1", "--port", str(port)], cwd=path,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("feast ui did not come up within 90 s")
        views = requests.get(f"{base}/api/v1/feature_views", params={"project": "shoprank"}, timeout=10).json()
        names = {v["spec"]["name"] for v in views.get("featureViews", views.get("feature_views", []))}
        assert names == {"user_stats", "item_stats", "user_session", "user_impressions"}, views
        page = requests.get(base, timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        ui.terminate()
        ui.wait(timeout=15)
