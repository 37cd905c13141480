"""The promise of POST /events under a crash: kill the API (SIGKILL, workers and all) in the middle of
a load of batches from the shop's backend (an API key naming shoppers by pseudonym); after a restart
every acknowledged event is stored exactly once, and a record torn by the kill is detected and dropped
with a log line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import requests

from shoprank.data.event_log import HEADER, MAGIC, segments
from tests.conftest import free_port
from tests.serving.conftest import api_key, subject_of
from tests.serving.test_api import _wait_ready

SHOPPERS = [subject_of(f"shopper{j}") for j in range(7)]  # as the shop's backend names them: pseudonyms


def start_api(env: dict, port: int, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:  # its stdout (the access log) to a file: a pipe nobody reads fills
        return subprocess.Popen([sys.executable, "-m", "shoprank.cli", "serve-api", "--port", str(port),
                                 "--internal-port", "0", "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def batch(prefix: str, n: int) -> list[dict]:
    at = datetime.now(UTC).isoformat()
    return [{"event_id": f"{prefix}-{j}", "event_type": "view", "user_id": SHOPPERS[j % 7], "event_time": at,
             "item_id": f"i{j % 30:02d}"} for j in range(n)]


def test_every_acknowledged_event_survives_a_sigkill_exactly_once(online_stack, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SHOPRANK_EVENT_LOG": str(tmp_path / "log"),
           "SHOPRANK_EVENT_ROLL_S": "3600"}  # nothing rolled by the API: the export below rolls
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backend = api_key("shop-backend", "events:write")
    api = start_api(env, port, tmp_path / "api.log")
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        session = requests.Session()
        session.headers.update(backend)
        while not stop.is_set():
            events = batch(f"c{n}-{uuid.uuid4().hex[:8]}", 50)
            sent.extend(e["event_id"] for e in events)
            try:
                response = session.post(f"{url}/events", json=events, timeout=5)
            except requests.RequestException:
                return
            if response.status_code == 200 and response.json()["accepted"] == len(events):
                acked.extend(e["event_id"] for e in events)

    try:
        _wait_ready(url)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(api.pid, signal.SIGKILL)  # mid-load: requests are in flight
        api.wait(10)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGKILL)
    assert len(acked) >= 2000, f"only {len(acked)} events acknowledged before the kill"

    dead = segments(tmp_path / "log")
    assert dead, "the killed API left no segments"
    payload = b'{"kind":"events","items":[{"event_id":"torn-1","event_type":"view"'
    with open(dead[-1], "ab") as fh:  # what a kill in the middle of a write leaves behind
        fh.write(HEADER.pack(MAGIC, len(payload) + 100, 0) + payload)

    api = start_api(env, port, tmp_path / "api.log")  # the restart: comes up beside the dead segments, knows their ids
    try:
        _wait_ready(url)
        resend = requests.post(f"{url}/events", json=batch(acked[0].rsplit("-", 1)[0], 3), headers=backend,
                               timeout=10)
        assert resend.status_code == 200 and resend.json()["duplicates"] == 3, resend.text
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(20)

    out = tmp_path / "export"
    export = subprocess.run([sys.executable, "-m", "shoprank.cli", "events", "export", str(out),
                             "--log-dir", str(tmp_path / "log")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert export.returncode == 0, export.stderr
    assert "dropped a torn last record" in export.stderr and dead[-1].name in export.stderr
    stored = pd.read_parquet(out / "feedback")["event_id"]
    counts = stored[stored.isin(set(acked))].value_counts()
    assert set(counts.index) == set(acked), f"{len(set(acked) - set(counts.index))} acknowledged events lost"
    assert (counts == 1).all(), counts[counts > 1].head()
    assert stored.is_unique and "torn-1" not in set(stored)
    assert set(stored) <= set(sent)  # nothing invented; sent but unacknowledged may be there, once
    assert segments(tmp_path / "log") == []
    assert Path(out / "events").is_dir()
