"""`make demo`: the nightly flow on real Ta Feng data, then recommendations and searches over the TF
Serving API.

Airflow runs the DAG (which runs the KFP pipeline through kfp.local), a model server serves the
pushed ranker and search ranker, a few real customers get recommendations next to what they bought
before, and personalised searches next to the anonymous result for the same query.
Everything started here is stopped before returning.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pandas as pd

from shoprank.data.curated import read_events, read_items
from shoprank.features.pseudonymise import create_key
from shoprank.features.store import write_feature_store_yaml
from shoprank.identity.subjects import subject_for
from shoprank.layout import CROSSING_PREFIX, DERIVED_PREFIX
from shoprank.orchestration.airflow_env import dags_test, migrate
from shoprank.orchestration.params import DEFAULTS
from shoprank.search import SEARCH_MODEL_NAME
from shoprank.serving.api.recommender import OnlineRecommender
from shoprank.serving.api.searcher import LiveSearchIndex, OnlineSearch
from shoprank.serving.model_server.launcher import start_model_server, stop
from shoprank.serving.model_server.versions import model_versions, read_labels
from shoprank.settings import REPO_ROOT, load_settings
from shoprank.storage import open_for

START, END = DEFAULTS.interval_start, DEFAULTS.interval_end  # all of Ta Feng


def banner(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def demo_customers(events: pd.DataFrame, n: int = 3) -> list[str]:
    """Busy customers of the last weeks: they have history worth showing beside their list."""
    recent = events[events["event_time"] >= events["event_time"].max() - pd.Timedelta(days=14)]
    return recent.groupby("user_id").size().sort_values(ascending=False).head(n).index.tolist()


def show_searches(settings, recommender: OnlineRecommender, events: pd.DataFrame, customers: list[str]) -> None:
    """For each customer, a search for the category (Ta Feng: PRODUCT_SUBCLASS) they bought most
    recently: their personalised result beside the anonymous one for the same query."""
    import tempfile
    from pathlib import Path


    live = LiveSearchIndex(recommender.models, Path(tempfile.gettempdir()) / "shoprank-search-index")
    live.refresh()
    if live.index is None:
        print(f"no search index to show ({live.last_error})")
        return
    searcher = OnlineSearch(recommender.context, live)
    category = read_items(open_for(settings)).set_index("item_id")["category"]
    for user_id in customers:
        bought = events[(events["user_id"] == user_id) & (events["event_type"] == "purchase")]
        if bought.empty:
            continue
        query = str(category.get(bought.sort_values("event_time")["item_id"].iloc[-1], ""))
        shopper = subject_for(user_id, settings.home)  # what the shop's token for them names
        mine = recommender.run_blocking(lambda u=shopper, q=query: searcher.search(q, u, 5))
        anyone = recommender.run_blocking(lambda q=query: searcher.search(q, None, 5))
        seen = set(bought["item_id"])
        banner(f"search {query!r} (index v{mine.index_version}, {mine.matched} matching items): customer {user_id} "
               f"{'(search ranker v' + str(mine.model_version) + ')' if mine.personalised else f'({mine.reason})'}"
               f" vs anonymous")
        print(f"  {'for ' + user_id:<45} | {'anonymous (lexical, then popularity)':<45}")
        left = [f"{shown(h)}{' (bought before)' if h.item_id in seen else ''}" for h in mine.items]
        right = [shown(h) for h in anyone.items]
        for i in range(max(len(left), len(right))):
            print(f"  {left[i] if i < len(left) else '':<45} | {right[i] if i < len(right) else ''}")


def shown(item) -> str:
    """An answered item: id, score (or a dash where a rule or the popular order placed it), source."""
    return f"{item.item_id} {f'{item.score:.3f}' if item.score is not None else '  -  '} {item.source}"


def run_demo(max_users: int = DEFAULTS.max_users_per_cutoff, epochs: int = DEFAULTS.epochs) -> int:
    settings = load_settings()
    t0 = time.perf_counter()
    banner(f"Airflow metadata DB under {settings.home / 'airflow'}")
    migrate(settings)
    # the Feast CLI and UI over the same registry: `cd feature_repo && feast feature-views list`
    write_feature_store_yaml(settings, REPO_ROOT / "feature_repo")
    if not os.environ.get("SHOPRANK_PSEUDONYM_KEY"):
        path, created = create_key(settings.home)  # explicit, once; never a new key behind a run's back
        banner(f"pseudonymisation key {path} ({'created for this demo home' if created else 'kept'})")
    conf = replace(DEFAULTS, source="tafeng", interval_start=START, interval_end=END,
                   max_users_per_cutoff=max_users, epochs=epochs).arguments()
    banner("airflow dags test shoprank_nightly (runs the KFP pipeline through kfp.local)")
    result = dags_test(settings, "shoprank_nightly", END, conf)
    if result.returncode != 0:
        print(f"the DAG run failed (exit {result.returncode}); see the task log above")
        return result.returncode
    models = open_for(settings, "models")
    versions = model_versions(models, "ranker")
    if not versions:
        print("the run finished but no model was pushed (not blessed): nothing to serve")
        return 1
    banner(f"model server over {settings.models} (ranker versions {versions}, labels {read_labels(models, 'ranker')})")
    rest_port = int(settings.model_server_url.rsplit(":", 1)[1])
    grpc_port = int(settings.model_server_grpc.rsplit(":", 1)[1])
    served = ["ranker"] + ([SEARCH_MODEL_NAME] if model_versions(models, SEARCH_MODEL_NAME) else [])
    server = start_model_server(settings.models, rest_port, grpc_port, served,
                                log_path=settings.home / "model-server.log")
    try:
        store = open_for(settings)
        events = read_events(store, start=pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=60))
        recommender = OnlineRecommender(settings).load(refresh_seconds=None)
        for user_id in [*demo_customers(events), "NEW-CUSTOMER-0"]:
            bought = events[(events["user_id"] == user_id) & (events["event_type"] == "purchase")]
            recent = bought.sort_values("event_time", ascending=False).drop_duplicates("item_id").head(5)
            recs = recommender.recommend_blocking(subject_for(user_id, settings.home), k=5).items
            banner(f"customer {user_id}: {len(bought)} purchases in the last 60 days")
            print(f"  {'recently bought':<30} | {'recommended (ranker over TF Serving gRPC)':<45}")
            left = [f"{r.item_id} ({r.event_time:%m-%d})" for r in recent.itertuples()]
            seen = set(bought["item_id"])
            right = [f"{shown(r)} {r.reason['template']}{' (bought before)' if r.item_id in seen else ''}"
                     for r in recs]
            for i in range(max(len(left), len(right))):
                print(f"  {left[i] if i < len(left) else '':<30} | {right[i] if i < len(right) else ''}")
        show_searches(settings, recommender, events, demo_customers(events))
        recommender.close()
    finally:
        stop(server)
    banner("where the artifacts are")
    for what, where in [
        ("curated events (private zone)", f"{settings.store}/curated/"),
        ("private tasks' logs (private zone)", str(settings.home / "logs" / "private")),
        ("the crossing: what the private zone handed over", f"{settings.store}/{CROSSING_PREFIX}/"),
        ("derived features (Feast offline sources, popular)", f"{settings.feast_offline}/{DERIVED_PREFIX}/"),
        ("Feast registry / online store", f"{settings.resolve(settings.feast_registry)} / "
                                          f"{settings.resolve(settings.feast_online_store)}"),
        ("validation reports (Data Docs)", str(settings.reports_dir / "validation")),
        ("KFP run artifacts (datasets, models, metrics)", str(settings.home / "kfp")),
        ("model base path (TF Serving layout)", settings.models),
        ("Airflow logs", str(settings.home / "airflow" / "logs")),
    ]:
        print(f"  {what:<48} {where}")
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; the model server is stopped.")
    return 0
