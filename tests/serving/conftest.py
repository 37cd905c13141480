"""A small but real online stack for the API tests: Feast (apply + materialise) over pseudonymised
purchases of named shoppers, a pushed ranker SavedModel, and a TF-Serving-compatible model server."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import free_port

PSEUDONYM_KEY = "api-test-key"
SHOPPERS = ["alice", "bob", "carol", "dave", "erin"]
ITEMS = pd.DataFrame({"item_id": [f"i{n:02d}" for n in range(30)],
                      "category": [f"c{n % 4}" for n in range(30)], "brand": None,
                      "price": [1.0 + n for n in range(30)], "title": None})
SNAPSHOT = pd.Timestamp("2024-02-08", tz="UTC")


def shopper_events(key: str = PSEUDONYM_KEY) -> pd.DataFrame:
    """A month of purchases: each shopper keeps to a few items, so lists and candidates are real."""
    from shoprank.features.pseudonymise import pseudonym

    rng = np.random.default_rng(4)
    rows = []
    for n, shopper in enumerate(SHOPPERS):
        favourites = [f"i{(3 * n + j) % 30:02d}" for j in range(6)]
        for day in range(35):
            for item in rng.choice(favourites, 2, replace=False):
                rows.append((pseudonym(shopper, key.encode()), item, "purchase",
                             SNAPSHOT - pd.Timedelta(days=36 - day)))
    frame = pd.DataFrame(rows, columns=["user_key", "item_id", "event_type", "event_time"])
    frame["price"], frame["quantity"] = 2.0, 1
    return frame


def build_online_home(home: Path, model_dir: Path, online_store: str | None = None, key: str = PSEUDONYM_KEY,
                      push: bool = True) -> None:
    """Features for SHOPPERS in Feast (online store materialised, with the id of the pseudonymisation
    key recorded as the features step does), the popular list, ranker v1 pushed."""
    import json

    import pyarrow as pa

    from shoprank.data.schema import ITEMS as SCHEMA_ITEMS
    from shoprank.features import store as feast_store
    from shoprank.features.definitions import ITEM_NEIGHBOURS_KEY, KEY_RECORD, POPULAR_KEY
    from shoprank.features.engine.frames import feature_snapshots, item_neighbours
    from shoprank.features.pseudonymise import PseudonymKey
    from shoprank.features.snapshots import snapshot_times
    from shoprank.features.training_set import popular_at
    from shoprank.layout import CATALOGUE_KEY, SIMILAR_ITEMS_KEY
    from shoprank.search.similar import similar_items
    from shoprank.serving.registry.push import push_model
    from shoprank.settings import load_settings
    from shoprank.storage import open_for, open_store, write_parquet

    settings = load_settings(**({"feast_online_store": online_store} if online_store else {}))
    times = snapshot_times(SNAPSHOT, 3)
    users, items = feature_snapshots(shopper_events(key), ITEMS, times)
    feast_store.write_offline_sources(settings, users, items)
    popular = pd.DataFrame({"item_id": popular_at(items, times[-1], 200)})
    popular["rank"] = np.arange(len(popular))
    write_parquet(open_for(settings), POPULAR_KEY, pa.Table.from_pandas(popular,
                                                                                        preserve_index=False))
    neighbours = item_neighbours(shopper_events(key), times[-1])
    write_parquet(open_for(settings), ITEM_NEIGHBOURS_KEY,
                  pa.Table.from_pandas(neighbours, preserve_index=False))
    # what the nightly `neighbours` step writes beside them: the catalogue and the similar items
    bought = dict(zip(neighbours["item_id"], neighbours["neighbours"].map(list), strict=True))
    write_parquet(open_for(settings), SIMILAR_ITEMS_KEY,
                  pa.Table.from_pandas(similar_items(ITEMS, bought), preserve_index=False))
    write_parquet(open_for(settings), CATALOGUE_KEY, pa.Table.from_pandas(ITEMS, schema=SCHEMA_ITEMS,
                                                                          preserve_index=False))
    open_for(settings).put_bytes(KEY_RECORD, json.dumps(
        {"key_id": PseudonymKey(key.encode(), "test").id}).encode())
    feast_store.apply_and_materialise(settings, times[-1])
    if push:
        push_model(open_store(settings.models), model_dir, "ranker", {"test": True})


@pytest.fixture(scope="module")
def online_stack(tmp_path_factory, tiny_model_dir):
    """(settings, model server) over a freshly built online home; the environment points at both."""
    from shoprank.serving.model_server.server import ModelServer
    from shoprank.settings import load_settings

    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("SHOPRANK_"):
            mp.delenv(key)
    home = tmp_path_factory.mktemp("online") / "home"
    mp.setenv("SHOPRANK_HOME", str(home))
    mp.setenv("SHOPRANK_PSEUDONYM_KEY", PSEUDONYM_KEY)
    mp.setenv("SHOPRANK_INTERNAL_PORT", "0")  # one port in process (TestClient); test_api splits them
    build_online_home(home, tiny_model_dir)
    install_token_keys(home)
    server = ModelServer(load_settings().models, rest_port=0, grpc_port=0, poll_seconds=0.2).start()
    mp.setenv("SHOPRANK_MODEL_SERVER_GRPC", f"127.0.0.1:{server.grpc_port}")
    mp.setenv("SHOPRANK_MODEL_SERVER_URL", f"http://127.0.0.1:{server.rest_port}")
    yield load_settings(), server
    server.stop()
    mp.undo()


@contextmanager
def api_with_search(settings, folder: Path):
    """The API in process (TestClient) over the online stack, with a search index over ITEMS published
    first (every title "item <n> tea"), and a model deadline no busy test machine misses."""
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from shoprank.search.index import SearchIndex, publish_index
    from shoprank.serving.api.app import create_app
    from shoprank.storage import open_store

    built = SearchIndex.build(ITEMS.assign(title=[f"item {n} tea" for n in range(len(ITEMS))]))
    publish_index(open_store(settings.models), built.save(folder / "v"), {})
    with TestClient(create_app(replace(settings, model_timeout_s=5.0))) as client:
        yield client


def install_token_keys(home: Path) -> None:
    """The token signing key pair where the settings look (the private key stands in for the
    private zone's issuer; the API reads only the public one)."""
    from shoprank.identity.tokens import create_signing_key
    from shoprank.settings import load_settings

    settings = load_settings()
    private = Path(settings.resolve(settings.token_signing_key))
    if not private.exists():
        create_signing_key(private, Path(settings.resolve(settings.token_public_keys)))


def issuer(key: str = PSEUDONYM_KEY):
    """The private zone's token issuer for the test shoppers (pseudonymised with `key`)."""
    from shoprank.features.pseudonymise import PseudonymKey
    from shoprank.identity.tokens import TokenIssuer
    from shoprank.settings import load_settings

    settings = load_settings()
    return TokenIssuer(Path(settings.resolve(settings.token_signing_key)).read_bytes(),
                       PseudonymKey(key.encode(), "test"))


def bearer(user_id: str, key: str = PSEUDONYM_KEY) -> dict[str, str]:
    """Headers that call the API as `user_id`'s shopper token."""
    return {"Authorization": f"Bearer {issuer(key).issue(user_id)}"}


def api_key(caller: str, *scopes: str) -> dict[str, str]:
    """Headers that call the API with a new server-to-server key with `scopes`."""
    from shoprank.identity.api_keys import ApiKeys
    from shoprank.settings import load_settings

    settings = load_settings()
    return {"X-API-Key": ApiKeys(Path(settings.resolve(settings.api_keys_file))).create(caller, list(scopes))}


def subject_of(user_id: str, key: str = PSEUDONYM_KEY) -> str:
    from shoprank.features.pseudonymise import pseudonym

    return pseudonym(user_id, key.encode())


def stored(client) -> tuple:
    """Close the in-process API's open log segment and roll it: (events, served lists), as the night reads them."""
    from shoprank.data.served import read_served, roll
    from shoprank.storage import open_store

    state = client.app.state.shoprank
    state.intake.events.rotate()
    store = open_store(state.settings.store)
    roll(state.settings.event_log_dir, store)
    return read_served(store, "events"), read_served(store, "requests")


def split_experiment(name: str, second: dict, route: str = "recommend"):
    """A 50/50 experiment on `route` (control: `stable`; `second`: the test arm's fields) whose salt
    puts the first shopper on the test arm and someone on each."""
    from shoprank.evaluation.experiments.config import assign, parse_experiment

    for n in range(200):
        experiment = parse_experiment({"name": name, "route": route, "salt": f"{name}-{n}",
                                       "arms": [{"name": "control", "label": "stable", "share": 0.5},
                                                {"name": "test", "share": 0.5, **second}]})
        arms = [assign(experiment, subject_of(s)).name for s in SHOPPERS]
        if arms[0] == "test" and "control" in arms:
            return experiment
    raise AssertionError("no salt splits the test shoppers")


def serve_experiment(client, experiment) -> None:
    """Publish `experiment` in place of any running one and make the in-process API serve it now."""
    from datetime import UTC, datetime

    from shoprank.evaluation.experiments.config import closed, write_experiment
    from shoprank.storage import open_store

    state = client.app.state.shoprank
    models = open_store(state.settings.models)
    for other in list(state.experiments.experiments):
        if other.status == "running":
            write_experiment(models, closed(other, "stopped", "next test", datetime.now(UTC)))
    write_experiment(models, experiment)
    assert state.experiments.refresh() and state.experiments.last_error is None, state.experiments.last_error


__all__ = ["free_port", "build_online_home", "online_stack", "SHOPPERS", "bearer", "api_key", "issuer",
           "subject_of", "install_token_keys", "stored", "split_experiment", "serve_experiment"]


def wait_labelled(rest_url: str, name: str, timeout_s: float = 30.0) -> None:
    """Until the model server serves `name` under `stable` (push moved the label in models.config; the
    server polls it)."""
    import time

    from shoprank.serving.model_server.client import RestClient

    rest = RestClient(rest_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            rest.metadata(name, label="stable")
            return
        except Exception:  # noqa: BLE001 - not labelled yet
            time.sleep(0.1)
    raise AssertionError(f"{name} was not served under stable within {timeout_s:.0f} s")
