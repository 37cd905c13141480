"""End to end on a slice of real Ta Feng data, with the zone split enforced: the store is an S3
server that checks IAM, the private tasks run with only the private zone's credentials and key,
and `airflow dags test shoprank_nightly` runs the public KFP pipeline through kfp.local with only
the public zone's. The pushed model is then served over TF Serving REST and gRPC and the online
recommender answers from Feast. A second night with a broken batch must stop at the gate and leave
every feature, model and online-store byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.identity.subjects import subject_for
from shoprank.orchestration.airflow_env import dags_test, migrate
from shoprank.orchestration.enforcement import EnforcedZones, start_zones
from shoprank.orchestration.zone_runner import read_env_file
from shoprank.settings import load_settings
from shoprank.storage import open_for
from tests.night_env import as_zone, small_night_env

pytestmark = pytest.mark.slow

START, END = "2000-11-01", "2001-03-01"


def _fingerprint(root: Path, skip: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file under root, except run logs/reports that a failed run may add."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not str(p.relative_to(root)).startswith(skip)}


KEY = "e2e-key"


@pytest.fixture(scope="module")
def zones(tmp_path_factory) -> EnforcedZones:
    root = tmp_path_factory.mktemp("e2e")
    enforced = start_zones(root / "zones", public_home=root / "home", private_home=root / "private-home",
                           pseudonym_key=KEY)
    yield enforced
    enforced.stop()


@pytest.fixture(scope="module")
def nightly_home(zones, tafeng_slice_dir):
    """One successful night, run the way a data engineer runs it: through the Airflow DAG, this
    process and Airflow holding only the public zone's settings (no key, no private credentials)."""
    mp = pytest.MonkeyPatch()
    public = read_env_file(zones.env("public"))
    small_night_env(mp, Path(public["SHOPRANK_HOME"]), KEY)
    mp.delenv("SHOPRANK_PSEUDONYM_KEY")
    for name, value in public.items():
        mp.setenv(name, value)
    boto3.DEFAULT_SESSION = None  # credentials an earlier test left in the default session are not ours
    settings = load_settings()
    migrate(settings)
    conf = {"source": "canonical", "source_path": str(tafeng_slice_dir), "interval_start": START,
            "interval_end": END, "max_users_per_cutoff": 300, "epochs": 2,
            "sequence_epochs": 1}
    result = dags_test(settings, "shoprank_nightly", END, conf)
    assert result.returncode == 0, "airflow dags test shoprank_nightly failed (see captured output)"
    yield settings
    mp.undo()


def test_night_pushes_a_servable_model_with_lineage(nightly_home):
    settings = nightly_home
    version_dir = Path(settings.models) / "ranker" / "1"
    assert (version_dir / "saved_model.pb").exists()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    lineage = json.loads((version_dir / "assets.extra" / "lineage.json").read_text())
    assert lineage["data_interval"] == [START, END] and lineage["source"] == "canonical"
    assert 0 <= lineage["metrics"]["recall@20"] <= 1 and "recall@20" in lineage["baselines"]["popularity"]
    from shoprank.serving.model_server.versions import read_labels
    from shoprank.storage import open_store

    assert read_labels(open_store(settings.models), "ranker") == {"stable": 1}  # models.config, as TF Serving polls
    card = json.loads((version_dir / "assets.extra" / "model_card.json").read_text())
    assert card["device"] == "CPU" and len(card["data_cutoffs"]) == 5
    assert card["training_set"]["label_days"] == 7 and card["training_set"]["max_users_per_cutoff"] == 300


def test_a_training_set_built_part_by_part_holds_the_rows_the_night_built_whole(nightly_home, tmp_path):
    """The night's 300 users per cut-off fit one part; built again from the same artifacts in parts of
    250 lists, the file holds several row groups and exactly the same rows and features."""
    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.orchestration.steps import training_set

    run = min((nightly_home.home / "kfp").glob("shoprank-nightly-*"))
    whole = pd.read_parquet(run / "training-set" / "dataset" / "examples.parquet")
    report = training_set(run / "receive" / "crossing", tmp_path / "parts",
                          TrainingSetConfig(max_users_per_cutoff=300, seed=0), nightly_home,
                          interactions_path=run / "receive" / "interactions",
                          snapshots_dir=run / "snapshots" / "snapshots",
                          impressions_path=run / "receive" / "impressions", lists_per_part=250)
    path = tmp_path / "parts" / "examples.parquet"
    assert report["parts"] == pq.ParquetFile(path).num_row_groups > 2
    parted = pd.read_parquet(path)
    keys = ["split", "event_timestamp", "user_key", "item_id"]
    whole, parted = (f.sort_values(keys).reset_index(drop=True) for f in (whole, parted))
    pd.testing.assert_frame_equal(parted[whole.columns], whole, check_dtype=False)


def test_night_leaves_curated_days_private_and_pseudonymised_features(nightly_home, zones, tafeng_slice_dir):
    from shoprank.features.crossing import latest_crossing, read_crossing, read_table
    from shoprank.layout import USER_STATS_KEY

    settings = nightly_home
    with as_zone(zones.env("private")):
        days = sorted({key.split("/")[2] for key in open_for(load_settings()).list("curated/events/")})
    assert days[0] == "date=2000-11-01" and days[-1] == "date=2001-02-28"
    assert not open_for(settings).list("curated/staging/")  # the staged batch went with publishing
    raw_ids = set(pq.read_table(tafeng_slice_dir / "users").column("user_id").to_pylist())
    store = open_for(settings)
    crossing = read_crossing(store, latest_crossing(store, "nightly"))
    assert crossing.interval == (START, END) and len(crossing.snapshot_times) == 6
    interactions = set(read_table(store, crossing, "interactions")["user_key"])
    users = set(pq.read_table(Path(settings.feast_offline) / USER_STATS_KEY).column("user_key").to_pylist())
    for keys in (interactions, users):
        assert keys and not keys & raw_ids  # nothing that crosses the link carries a raw customer id
    assert (settings.home / "feast" / "online.db").stat().st_size > 0
    assert any((settings.home / "kfp").rglob("examples.parquet"))


def _denied(call) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"]


def test_a_public_process_cannot_read_or_write_the_private_prefixes(nightly_home, zones):
    """The enforcement itself: the public zone's credentials get AccessDenied on raw/, curated/ and
    state/ (served/ is public: the API's log holds pseudonyms only), for reads and writes, in this
    process and in a process started with `public.env` as the public pods are; the private zone's
    credentials read the same key."""
    import subprocess
    import sys

    from shoprank.orchestration.zone_runner import zone_environment

    public, private = zones.client("public"), zones.client("private")
    curated = next(o["Key"] for o in private.list_objects_v2(Bucket=zones.bucket, Prefix="curated/events/")["Contents"])
    assert private.get_object(Bucket=zones.bucket, Key=curated)["ContentLength"] > 0
    for key in (curated, "raw/export.csv", "curated/erasure/list.json", "curated/identity/issued/x.parquet",
                "state/validation/reference.json"):
        assert _denied(lambda k=key: public.get_object(Bucket=zones.bucket, Key=k)) == "AccessDenied"
        assert _denied(lambda k=key: public.put_object(Bucket=zones.bucket, Key=k, Body=b"x")) == "AccessDenied"
    assert _denied(lambda: public.delete_object(Bucket=zones.bucket, Key=curated)) == "AccessDenied"
    script = ("import sys; from shoprank.settings import load_settings; from shoprank.storage import open_for; "
              "open_for(load_settings()).get_bytes(sys.argv[1])")
    done = subprocess.run([sys.executable, "-c", script, curated], capture_output=True, text=True,
                          env=zone_environment("public", nightly_home))
    assert done.returncode != 0 and "AccessDenied" in done.stderr, done.stderr[-2000:]


def _strings(value) -> list[str]:
    """Every string inside a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _parquet_strings(data: bytes) -> tuple[set[str], set[str]]:
    """(every string value, the values of query-text columns) of a parquet file."""
    import io

    import pyarrow as pa

    table = pq.read_table(io.BytesIO(data))
    values, queries = set(), set()
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_list(column.type):
            column = pa.chunked_array([chunk.flatten() for chunk in column.chunks], type=column.type.value_type)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            found = {v for v in column.to_pylist() if v is not None}
            values |= found
            if "query" in name:
                queries |= found
    return values, queries


def test_nothing_the_public_side_can_read_holds_a_raw_id_or_an_unscrubbed_query(nightly_home, zones,
                                                                                 tafeng_slice_dir):
    """After the night: every object the public credentials can read, and every file on the public
    side's disk (KFP pipeline root, models, Feast), holds no raw customer id of the slice, no raw
    session id, and no query text the scrubber would change."""
    from botocore.exceptions import ClientError

    from shoprank.data.search_log import scrub

    raw_ids = set(pq.read_table(tafeng_slice_dir / "users").column("user_id").to_pylist())
    sessions = {v for p in (tafeng_slice_dir / "events").rglob("*.parquet")
                for v in pq.read_table(p, columns=["session_id"]).column("session_id").to_pylist() if v}
    public = zones.client("public")
    blobs: dict[str, bytes] = {}
    listed = public.get_paginator("list_objects_v2").paginate(Bucket=zones.bucket)
    for obj in (o for page in listed for o in page.get("Contents", [])):
        try:
            blobs[f"s3://{obj['Key']}"] = public.get_object(Bucket=zones.bucket, Key=obj["Key"])["Body"].read()
        except ClientError:
            continue  # what the public side cannot read is not its to leak
    assert any(k.startswith("s3://features/crossing/") for k in blobs)
    assert not [k for k in blobs if k.removeprefix("s3://").startswith(("raw/", "curated/", "state/"))]
    home = nightly_home.home
    for path in home.rglob("*"):
        if path.is_file() and path.suffix in (".parquet", ".json", ".jsonl") and "airflow" not in path.parts:
            blobs[str(path)] = path.read_bytes()
    scanned = 0
    for name, data in blobs.items():
        if data[:4] == b"PAR1":
            values, queries = _parquet_strings(data)
        else:
            try:
                values = set(_strings(json.loads(data)))
            except ValueError:
                values = {s for line in data.splitlines() if line.strip().startswith(b"{")
                          for s in _strings(json.loads(line))} if name.endswith(".jsonl") else set()
            queries = set()
        scanned += 1
        assert not values & raw_ids, f"{name} holds raw customer ids: {sorted(values & raw_ids)[:5]}"
        assert not values & sessions, f"{name} holds raw session ids: {sorted(values & sessions)[:5]}"
        assert all(scrub(q) == q for q in queries), f"{name} holds query text the scrubber would change"
    assert scanned > 20


def test_night_publishes_a_search_index_and_judges_the_search_ranker(nightly_home, tafeng_slice_dir):
    from shoprank.search import SEARCH_MODEL_NAME
    from shoprank.search.index import SearchIndex, index_versions
    from shoprank.serving.model_server.versions import model_versions
    from shoprank.storage import open_store

    settings = nightly_home
    models = open_store(settings.models)
    assert index_versions(models) == [1]
    index = SearchIndex.load(Path(settings.models) / "search_index" / "1")
    catalogue = pq.read_table(tafeng_slice_dir / "items").column("item_id").to_pylist()
    assert len(index) == len(set(catalogue))  # every item, bought or not, is findable by its text
    blessing = json.loads(next((settings.home / "kfp").rglob("search-ranker/blessing")).read_text())
    assert set(blessing["baselines"]) == {"bm25", "bm25_popularity", "own_frequency"}
    assert 0 <= blessing["candidate"]["ndcg@10"] <= 1 and blessing["facts"]["queries"]["test"] > 0
    pushed = model_versions(models, SEARCH_MODEL_NAME)
    assert pushed == ([1] if blessing["blessed"] else [])  # pushed exactly when blessed
    if pushed:
        assert (Path(settings.models) / SEARCH_MODEL_NAME / "1" / "assets.extra" /
                "tf_serving_warmup_requests").stat().st_size > 0


def test_recommendations_over_grpc_match_the_rest_api(nightly_home, zones):
    from shoprank.data.curated import read_events
    from shoprank.serving.api.recommender import OnlineRecommender
    from shoprank.serving.model_server.client import RestClient
    from shoprank.serving.model_server.launcher import start_model_server, stop

    settings = nightly_home
    rest_port = int(settings.model_server_url.rsplit(":", 1)[1])
    grpc_port = int(settings.model_server_grpc.rsplit(":", 1)[1])
    server = start_model_server(settings.models, rest_port, grpc_port, ["ranker"])
    with as_zone(zones.env("private")):  # a customer's raw id, as the shop knows it, and its pseudonyms
        events = read_events(open_for(load_settings()), start=pd.Timestamp("2001-02-15", tz="UTC"))
        customer = subject_for(events["user_id"].value_counts().index[0], load_settings().home)
        stranger = subject_for("never-seen-customer", load_settings().home)
    recommender = OnlineRecommender(settings).load(refresh_seconds=None)  # the public API holds no key
    try:
        result = recommender.recommend_blocking(customer, k=10)
        assert result.model_version == 1 and not result.cold_start
        assert len(result.items) == 10 and all(r.source == "ranker" for r in result.items)
        scores = [r.score for r in result.items]
        assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
        # the same candidates scored over REST give the same scores: one model, two protocols
        user = recommender.user_row(customer)
        rows = recommender.items.table.take([r.item_id for r in result.items])
        inputs = recommender.inputs(user, rows, recommender.context_share())
        wanted = RestClient(settings.model_server_url).input_names("ranker")
        via_rest = RestClient(settings.model_server_url).predict("ranker", {k: inputs[k] for k in wanted})["score"]
        np.testing.assert_allclose(via_rest, scores, rtol=1e-5)
        cold = recommender.recommend_blocking(stranger, k=5)
        assert cold.cold_start and len(cold.items) == 5 and {r.source for r in cold.items} == {"popular"}
    finally:
        recommender.close()
        stop(server)


def test_online_rows_equal_the_offline_rows_for_the_same_user_and_time(nightly_home, zones):
    """One definition of each feature: Feast's point-in-time join + the training set's derivation
    gives, for a user at the materialised snapshot, exactly the inputs the online path computes."""
    from shoprank.features import store as feast_store
    from shoprank.features.derived import context_column, model_inputs
    from shoprank.features.training_set import with_features
    from shoprank.layout import USER_STATS_KEY
    from shoprank.serving.api.recommender import OnlineRecommender

    settings = nightly_home
    recommender = OnlineRecommender(settings).load(refresh_seconds=None)
    try:
        at = pd.Timestamp(recommender.items.table.version.data_end).tz_convert("UTC") - pd.Timedelta(seconds=1)
        users = feast_store.read_offline_table(settings, USER_STATS_KEY)
        snapshot = users[users["event_timestamp"] == at]
        assert len(snapshot) > 100
        checked = 0
        for user_key in snapshot.sort_values("user_n_purchases", ascending=False)["user_key"].head(20):
            online_user = recommender.online.user_row(user_key)
            candidates = recommender_candidates(recommender, online_user)
            rows = recommender.items.table.take(candidates)
            share = float(context_column([at], recommender.candidate_config.label_days)[0])
            online = recommender.inputs(online_user, rows, share)
            entity = pd.DataFrame({"user_key": user_key, "item_id": candidates, "event_timestamp": at})
            offline = model_inputs(with_features(entity, feast_store.historical_features(settings, entity),
                                                 recommender.candidate_config.label_days))
            assert sorted(online) == sorted(offline)
            for name in offline:
                np.testing.assert_array_equal(online[name], offline[name], err_msg=f"{user_key} {name}")
            checked += 1
        assert checked == 20
    finally:
        recommender.close()


def recommender_candidates(recommender, user) -> list[str]:
    from shoprank.features.training_set import user_candidates

    config = recommender.candidate_config
    return user_candidates(user, recommender.popular[:config.n_popular], config)


def _bucket_fingerprint(zones, skip: tuple[str, ...]) -> dict[str, str]:
    """Every object's ETag (its content's MD5), listed with the public credentials."""
    listed = zones.client("public").get_paginator("list_objects_v2").paginate(Bucket=zones.bucket)
    return {o["Key"]: o["ETag"] for page in listed for o in page.get("Contents", []) if not o["Key"].startswith(skip)}


def test_failed_gate_stops_the_night_and_changes_nothing(nightly_home, zones, tafeng_slice_dir, tmp_path):
    from pipelines.runner import run_night

    settings = nightly_home
    broken = shutil.copytree(tafeng_slice_dir, tmp_path / "broken")
    day = sorted((broken / "events").iterdir())[-1]
    part = next(day.glob("*.parquet"))
    frame = pq.read_table(part).to_pandas()
    frame.loc[frame.index[:50], "price"] = -1.0  # a price glitch in the newest day
    frame.to_parquet(part, index=False)
    # run logs and the run lock's lease record only: state must not move
    skip = ("reports", "kfp", "airflow", "model-server.log", "store/locks")
    before = _fingerprint(settings.home, skip), _bucket_fingerprint(zones, ("locks/",))
    arguments = {"source": "canonical", "source_path": str(broken), "interval_start": START, "interval_end": END,
                 "n_snapshots": 6, "max_users_per_cutoff": 300, "epochs": 1, "sequence_epochs": 1}
    with pytest.raises(RuntimeError, match=r"private task validate failed: GateFailed: the gate refused") as failed:
        run_night(arguments, settings)
    assert failed.value.retryable is False  # the gate: the orchestrator does not retry it
    assert (_fingerprint(settings.home, skip), _bucket_fingerprint(zones, ("locks/",))) == before


HOUR = pd.Timestamp("2001-03-01T10:00", tz="UTC")


def test_hourly_refresh_publishes_the_hour_and_refreshes_the_online_features(nightly_home, zones, tafeng_slice_dir,
                                                                             tmp_path):
    """Runs late: it moves the online store forward. The hour holds the first purchases of three new
    shoppers: after `shoprank_features_refresh` the online store has their rows, with those purchases,
    and the day's curated partition holds the hour."""
    from shoprank.data.curated import read_events
    from shoprank.features import store as feast_store
    from shoprank.layout import USER_STATS_KEY
    from shoprank.serving.api.recommender import OnlineRecommender

    settings = nightly_home
    hour = shutil.copytree(tafeng_slice_dir, tmp_path / "hour", ignore=shutil.ignore_patterns("date=*"))
    events = pd.concat([pq.read_table(p).to_pandas() for p in (tafeng_slice_dir / "events").rglob("*.parquet")])
    purchases = events[events["event_type"] == "purchase"].head(9).reset_index(drop=True)
    new_users = [f"hourly-new-{n}" for n in range(3)]
    new = purchases.assign(user_id=[new_users[i // 3] for i in range(9)], session_id="hourly-test",
                           event_time=[HOUR + pd.Timedelta(minutes=5 + i) for i in range(9)])
    (hour / "events" / "date=2001-03-01").mkdir(parents=True)
    new.to_parquet(hour / "events" / "date=2001-03-01" / "part-0.parquet", index=False)
    users_file = next((hour / "users").rglob("*.parquet"))
    known = pq.read_table(users_file).to_pandas()
    extra = pd.concat([known.head(1)] * 3, ignore_index=True).assign(user_id=new_users)
    pd.concat([known, extra], ignore_index=True).to_parquet(users_file, index=False)

    with as_zone(zones.env("private")):  # the shop's token issuer names them by pseudonym
        subjects = {user: subject_for(user, load_settings().home) for user in new_users}

    def online_rows() -> dict[str, dict | None]:
        recommender = OnlineRecommender(settings).load(refresh_seconds=None)
        try:
            return {user: recommender.user_row(subjects[user]) for user in new_users}
        finally:
            recommender.close()

    assert online_rows() == dict.fromkeys(new_users)  # unknown before the refresh
    result = dags_test(settings, "shoprank_features_refresh", (HOUR + pd.Timedelta(hours=1)).isoformat(),
                       {"source": "canonical", "source_path": str(hour)})
    assert result.returncode == 0
    after = online_rows()
    assert all(after[u] is not None and after[u]["user_n_purchases"] == 3 for u in new_users), after
    with as_zone(zones.env("private")):
        curated = read_events(open_for(load_settings()), start=HOUR, end=HOUR + pd.Timedelta(hours=1))
    assert sorted(curated["user_id"].unique()) == new_users and len(curated) == 9
    users = feast_store.read_offline_table(settings, USER_STATS_KEY)
    assert (users["event_timestamp"] == HOUR + pd.Timedelta(hours=1)).sum() > 100


def test_a_canary_experiment_runs_from_the_push_that_starts_it_to_the_decision(nightly_home, zones):
    """The night's model pushed again to `canary` starts an experiment (half the shoppers here); Ta
    Feng shoppers ask the API for their lists; the shop sends back impressions and purchases, with the
    canary's shoppers buying more; the log rolls; the hourly look promotes the canary through the
    promotion path, and `stable` then serves it."""
    import time
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from shoprank.data.served import roll
    from shoprank.evaluation.experiments.config import read_experiments
    from shoprank.features import store as feast_store
    from shoprank.layout import USER_STATS_KEY
    from shoprank.orchestration.experiments import evaluate_experiments
    from shoprank.orchestration.steps import push
    from shoprank.serving.api.app import create_app
    from shoprank.serving.model_server.launcher import start_model_server, stop
    from shoprank.serving.model_server.versions import read_labels
    from shoprank.serving.registry import promotions
    from tests.serving.conftest import api_key

    settings = replace(nightly_home, canary_share=0.5, model_timeout_s=5.0)
    rest_port = int(settings.model_server_url.rsplit(":", 1)[1])
    grpc_port = int(settings.model_server_grpc.rsplit(":", 1)[1])
    server = start_model_server(settings.models, rest_port, grpc_port, ["ranker"])
    models = open_for(settings, "models")
    try:
        stable = read_labels(models, "ranker")["stable"]
        pushed = push(Path(settings.models) / "ranker" / str(stable), {"source": "e2e canary"}, label="canary",
                      settings=settings, load_timeout_s=120)
        [experiment] = [e for e in read_experiments(models) if e.name == pushed["experiment"]["experiment"]]
        users = feast_store.read_offline_table(settings, USER_STATS_KEY)
        newest = users[users["event_timestamp"] == users["event_timestamp"].max()]
        shoppers = sorted(newest["user_key"].astype(str).unique())[:500]
        reader, shop = api_key("e2e-backend", "read", "events:write"), api_key("e2e-orders", "events:write",
                                                                              "events:purchase")
        rng = np.random.default_rng(0)
        arms: dict[str, str] = {}
        with TestClient(create_app(settings)) as client:
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
            shown, bought = [], []  # the front end's impressions and the shop's orders, sent in batches
            for n, subject in enumerate(shoppers):
                answer = client.get("/recommend", params={"subject": subject, "k": 5}, headers=reader)
                assert answer.status_code == 200, answer.text
                name, arm = answer.headers["X-Experiment"].split("; arm=")
                assert name == experiment.name
                arms[subject] = arm
                body = answer.json()
                now = datetime.now(UTC).isoformat()
                item = body["items"][0]["item_id"]
                shown.append({"event_id": f"e2e-{n}-i", "event_type": "impression", "event_time": now,
                              "item_id": item, "user_id": subject, "request_id": body["request_id"], "position": 1})
                if rng.random() < (0.8 if arm == "canary" else 0.2):
                    bought.append({"event_id": f"e2e-{n}-p", "event_type": "purchase", "event_time": now,
                                   "item_id": item, "user_id": subject, "price": 2.5, "quantity": 1})
            time.sleep(0.01)  # every purchase after its exposure's list
            for batch, key in ((shown, reader), (bought, shop)):
                for at in range(0, len(batch), 250):
                    assert client.post("/events", json=batch[at:at + 250], headers=key).status_code == 200
            client.app.state.shoprank.intake.events.rotate()
            roll(settings.event_log_dir, open_for(settings, "served"))
        assert 150 < list(arms.values()).count("canary") < 350
        [decision] = evaluate_experiments(settings, now=datetime.now(UTC) + timedelta(hours=1))
        assert decision["action"] == "promote", decision
        assert read_labels(models, "ranker")["stable"] == pushed["version"]
        assert promotions.history(models, "ranker")[-1]["actor"] == f"experiment:{experiment.name}"
    finally:
        stop(server)


def test_a_forgotten_shopper_is_gone_from_every_store_after_the_next_night(nightly_home, zones, tafeng_slice_dir):
    """Runs last. `privacy forget` in the private zone (raw id) and its public half (pseudonyms only),
    then the next night through the DAG: no object either zone can read, no file on the public side's
    disk (KFP artifacts, Feast, models) and no online row holds the shopper by raw id or pseudonym;
    the erasure list keeps their rows out of the night's ingest, the API refuses their token, and
    what the recommender can find for them is nothing (non-personalised)."""
    import sqlite3

    from shoprank.features.choices import erased
    from shoprank.orchestration.erasure import forget_private, forget_public
    from shoprank.serving.api.recommender import OnlineRecommender

    settings = nightly_home
    with as_zone(zones.env("private")):
        private = load_settings()
        events = read_events_all(private)
        shopper = events["user_id"].value_counts().index[0]  # the most active: in every store
        report, pseudonyms = forget_private([shopper], private)
        subject = subject_for(shopper, private.home)
    assert report.stores["curated/events"] > 0 and report.stores["curated/users"] == 1
    assert report.stores["features/crossing"] > 0
    assert shopper not in json.dumps(report.as_dict())
    public_report = forget_public(pseudonyms, settings, report.erasure_id)
    assert public_report.stores["served/events"] >= 0 and sum(
        n for k, n in public_report.stores.items() if k.startswith("online:")) >= 1
    assert not set(pseudonyms) & set(json.dumps(public_report.as_dict()).split('"'))
    assert erased(open_for(settings)) >= pseudonyms

    conf = {"source": "canonical", "source_path": str(tafeng_slice_dir), "interval_start": START,
            "interval_end": END, "max_users_per_cutoff": 300, "epochs": 1, "sequence_epochs": 1,
            "ensemble": 1}  # the first night trained the ensemble; this one proves what it forgets
    assert dags_test(settings, "shoprank_nightly", END, conf).returncode == 0  # the next night

    wanted = {shopper, *pseudonyms}
    private_client, public_client = zones.client("private"), zones.client("public")
    seen = 0
    for client in (private_client, public_client):
        listed = client.get_paginator("list_objects_v2").paginate(Bucket=zones.bucket)
        for obj in (o for page in listed for o in page.get("Contents", [])):
            try:
                data = client.get_object(Bucket=zones.bucket, Key=obj["Key"])["Body"].read()
            except Exception:  # noqa: BLE001 - not this zone's to read
                continue
            seen += 1
            assert not _names(data) & wanted, f"s3://{obj['Key']} still holds the forgotten shopper"
    for path in settings.home.rglob("*"):
        if path.is_file() and path.suffix in (".parquet", ".json", ".jsonl") and "airflow" not in path.parts:
            seen += 1
            assert not _names(path.read_bytes()) & wanted, f"{path} still holds the forgotten shopper"
    db = settings.resolve(settings.feast_online_store).removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for (blob,) in conn.execute(f'SELECT entity_key FROM "{table}"'):
                assert not any(p.encode() in bytes(blob) for p in pseudonyms), f"online table {table}"
    assert seen > 30
    recommender = OnlineRecommender(settings).load(refresh_seconds=None)
    try:
        answer = recommender.recommend_blocking(subject, k=5)
        assert answer.cold_start and {r.source for r in answer.items} == {"popular"}
    finally:
        recommender.close()


def read_events_all(settings):
    from shoprank.data.curated import read_events

    return read_events(open_for(settings))


def _names(data: bytes) -> set[str]:
    """Every string value in a parquet or JSON(L) blob (what an id could hide in)."""
    if data[:4] == b"PAR1":
        values, _ = _parquet_strings(data)
        return values
    try:
        return set(_strings(json.loads(data)))
    except ValueError:
        return {s for line in data.splitlines() if line.strip().startswith(b"{") for s in _strings(json.loads(line))}
