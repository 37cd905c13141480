"""Part 8 of `make bench-serving`: the event intake (`POST /events`).

    .venv/bin/python bench/bench_serving.py --intake-only [--duration 20]

Two questions, on the same stack as the rest of bench-serving (demo store, model server, the API
with two workers and the SQLite online store, all on this machine's cores with the load generator):
1. Throughput: batches of real Ta Feng customers' views sent open-loop (each batch has a due time;
   latency is measured from it) at rising event rates, with the API rolling its log every 10 s as
   it does by default (into a scratch `served_root`). The batches come from the shop's backend: an
   API key with scope `events:write`, each event naming its customer by pseudonym. After the run
   the API is stopped, the rest of its log rolled, the hours compacted and the stored events
   counted: "nothing lost" means every acknowledged event is stored exactly once.
2. Event-to-visible: under background intake load (`VISIBLE_UNDER`, the backend's key), one view is
   sent by a customer's front end (their token; `POST /events` without `sync`: the answer comes
   once the event is durable) and the Feast online store is read until that customer's session row
   holds the item, p50/p99 over many probes (what the next `/recommend` reads).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    arr = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2), "p99_ms": round(float(np.percentile(arr, 99)), 2),
            "max_ms": round(float(arr.max()), 2)}


def catalogue_items(stack) -> list[str]:
    import io

    import pyarrow.parquet as pq

    from shoprank.features.definitions import POPULAR_KEY
    from shoprank.storage import open_store

    data = open_store(stack.demo.store).get_bytes(POPULAR_KEY)
    return [str(i) for i in pq.read_table(io.BytesIO(data)).column("item_id").to_pylist()]


def make_batch(subjects: list[str], items: list[str], size: int, rng: random.Random) -> list[dict]:
    """`size` views, each by one of `subjects` (pseudonyms)."""
    at = datetime.now(UTC).isoformat()
    return [{"event_id": uuid.uuid4().hex, "event_type": "view", "user_id": rng.choice(subjects),
             "event_time": at, "item_id": rng.choice(items)} for _ in range(size)]


def open_loop_batches(url: str, subjects: list[str], items: list[str], events_per_s: float, batch: int,
                      duration: float, headers: dict[str, str], seed: int = 0) -> tuple[dict, list[str]]:
    """Send batches at `events_per_s / batch` per second from their due times, with `headers` (an
    `events:write` key: each event names its shopper's pseudonym); (summary, acked ids)."""
    rng = random.Random(seed)
    n = max(1, int(duration * events_per_s / batch))
    bodies = [make_batch(subjects, items, batch, rng) for _ in range(n)]
    latencies: list[float] = []
    acked: list[str] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    local = threading.local()
    start = time.perf_counter() + 0.2

    def send(i: int) -> None:
        due = start + i * batch / events_per_s
        time.sleep(max(0.0, due - time.perf_counter()))
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            response = session.post(f"{url}/events", json=bodies[i], headers=headers, timeout=10)
            kind = None if response.status_code == 200 and response.json()["accepted"] == batch \
                else f"http_{response.status_code}"
        except requests.RequestException as err:
            kind = type(err).__name__
        done = time.perf_counter()
        with lock:
            if kind is None:
                latencies.append(done - due)
                acked.extend(e["event_id"] for e in bodies[i])
            else:
                errors[kind] = errors.get(kind, 0) + 1

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(send, range(n)))
    span = time.perf_counter() - start
    return ({"offered_events_per_s": events_per_s, "batch": batch, "batches": n,
             "achieved_events_per_s": round(len(acked) / span, 1), "errors": sum(errors.values()),
             "error_kinds": errors, **_percentiles(latencies)}, acked)


def stored_exactly_once(log_dir: Path, scratch: Path, acked: list[str]) -> dict:
    """Roll what the stopped API left (it rolled the rest itself while it ran), compact, and count:
    acknowledged events lost, and stored twice (in the objects, before readers drop repeats)."""
    import io

    import pyarrow.parquet as pq

    from shoprank.data.served import EVENTS_PREFIX, compact, roll
    from shoprank.storage import LocalStore

    store = LocalStore(scratch)
    rolled = roll(log_dir, store, log=print)
    compact(store, pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))  # every hour is over for the count
    stored = pd.Series([i for key in store.list(EVENTS_PREFIX)
                        for i in pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["event_id"])
                        .column(0).to_pylist()])
    counts = stored.value_counts()
    return {"acknowledged": len(acked), "stored": int(len(stored)), "lost": len(set(acked) - set(counts.index)),
            "stored_twice": int((counts > 1).sum()), "torn_records": len(rolled.torn)}


def event_to_visible(stack, url: str, customers: list[str], items: list[str], probes: int,
                     background_events_per_s: float, headers: dict[str, str]) -> dict:
    """Time from a shopper's front end sending a view (their token) to their session row holding it in
    the online store; the background load is the backend's (`headers`: an `events:write` key)."""
    from shoprank.features import store as feast_store
    from shoprank.features.session import SessionStore, session_state

    sessions = SessionStore(feast_store.feature_store(stack.settings(stack.sqlite)))
    subjects = [stack.subject(c) for c in customers]
    stop = threading.Event()

    background_sent = [0]

    def background() -> None:
        rng = random.Random(99)
        session = requests.Session()
        while not stop.is_set():
            due = time.perf_counter() + 500 / background_events_per_s
            session.post(f"{url}/events", json=make_batch(subjects, items, 500, rng), headers=headers, timeout=10)
            background_sent[0] += 500
            time.sleep(max(0.0, due - time.perf_counter()))

    loader = threading.Thread(target=background, daemon=True)
    loader.start()
    rng = random.Random(5)
    waits, missed = [], 0
    probe_users = [f"probe-{n}-{rng.choice(customers)}" for n in range(probes)]
    tokens = [stack.bearer(user) for user in probe_users]  # issued up front, as a login would
    began = time.perf_counter()
    try:
        for n, user in enumerate(probe_users):
            item = rng.choice(items)
            sent = time.perf_counter()
            answer = requests.post(f"{url}/events", json=[{"event_id": uuid.uuid4().hex, "event_type": "view",
                                                           "event_time": datetime.now(UTC).isoformat(),
                                                           "item_id": item}], headers=tokens[n], timeout=10)
            if answer.status_code != 200 or answer.json()["accepted"] != 1:
                raise SystemExit(f"POST /events refused a probe's view: {answer.status_code} {answer.text[:300]}")
            user_key = stack.subject(user)
            while True:
                state = session_state(sessions.read([user_key])[user_key], time.time())
                if item in state.viewed:
                    waits.append(time.perf_counter() - sent)
                    break
                if time.perf_counter() - sent > 5:
                    missed += 1
                    break
                time.sleep(0.002)
    finally:
        stop.set()
        loader.join(10)
    return {"probes": probes, "background_events_per_s": background_events_per_s,
            "background_achieved_events_per_s": round(background_sent[0] / (time.perf_counter() - began), 1),
            "not_visible_within_5s": missed, **_percentiles(waits)}


VISIBLE_UNDER = (1000, 5000)  # background intake load (events/s) while event-to-visible is probed


def run_intake(stack, customers: list[str], rates: list[float], duration: float, batch: int = 500,
               probes: int = 200) -> dict:
    """The whole part: throughput at each rate (with the loss count), then event-to-visible."""
    import shutil

    items = catalogue_items(stack)
    url = f"http://127.0.0.1:{stack.api_port}"
    backend = stack.api_key("bench-intake", ["events:write"])  # the shop's backend: names shoppers by pseudonym
    subjects = [stack.subject(c) for c in customers]
    by_rate = {}
    for rate in rates:
        log_dir = stack.work / f"events-{int(rate)}"
        served = stack.work / f"served-{int(rate)}"  # the API rolls as configured by default, into scratch
        stack.extra_env = {"SHOPRANK_EVENT_LOG": str(log_dir), "SHOPRANK_SERVED_ROOT": str(served)}
        stack.start_api(stack.sqlite)
        summary, acked = open_loop_batches(url, subjects, items, rate, batch, duration, backend)
        stack.stop("api")  # SIGTERM: the API closes its segments
        summary.update(stored_exactly_once(log_dir, served, acked))
        by_rate[str(rate)] = summary
        print(json.dumps(summary), flush=True)
        shutil.rmtree(log_dir, ignore_errors=True)
    visible = []
    for background in VISIBLE_UNDER:
        stack.extra_env = {"SHOPRANK_EVENT_LOG": str(stack.work / f"events-visible-{background}"),
                           "SHOPRANK_EVENT_ROLL_S": "86400"}
        stack.start_api(stack.sqlite)
        visible.append(event_to_visible(stack, url, customers, items, probes, background_events_per_s=background,
                                        headers=backend))
        print(json.dumps(visible[-1]), flush=True)
        stack.stop("api")
    stack.extra_env = {}
    return {"by_rate": by_rate, "event_to_visible": visible}


def intake_markdown(intake: dict) -> str:
    lines = ["| offered events/s | achieved | batch p50 ms | batch p99 ms | errors | acknowledged | lost "
             "| stored twice |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in sorted(intake["by_rate"], key=float):
        r = intake["by_rate"][rate]
        lines.append(f"| {float(rate):,.0f} | {r['achieved_events_per_s']:,.0f} | {r['p50_ms']:.1f} "
                     f"| {r['p99_ms']:.1f} | {r['errors']} | {r['acknowledged']:,} | {r['lost']} "
                     f"| {r['stored_twice']} |")
    lines += ["", "| event-to-visible under events/s | probes | p50 ms | p99 ms | max ms | not visible in 5 s |",
              "|---:|---:|---:|---:|---:|---:|"]
    for v in intake["event_to_visible"]:
        lines.append(f"| {v['background_events_per_s']:,.0f} | {v['probes']} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} "
                     f"| {v['max_ms']:.1f} | {v['not_visible_within_5s']} |")
    return "\n".join(lines)
