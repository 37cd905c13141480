"""Alerts: always a local JSON line (and the console); in the cluster profile also a POST to the
webhook an Airflow Connection holds; a dead webhook never swallows the alert."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from shoprank.orchestration.alerts import FailureAlert, alerts_path, deadline_missed
from shoprank.settings import load_settings

CONTEXT = {"dag": SimpleNamespace(dag_id="shoprank_nightly"), "run_id": "scheduled__2024-01-02",
           "ti": SimpleNamespace(task_id="run_pipeline", dag_id="shoprank_nightly", try_number=3),
           "exception": RuntimeError("KFP run ended FAILED")}


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0", received
    server.shutdown()


def _lines(settings) -> list[dict]:
    return [json.loads(line) for line in alerts_path(settings).read_text().splitlines()]


def test_local_alert_is_a_log_line_and_a_console_line(home, capsys):
    FailureAlert().notify(CONTEXT)
    (alert,) = _lines(load_settings())
    assert alert["kind"] == "task_failed" and alert["task_id"] == "run_pipeline" and alert["try_number"] == 3
    assert alert["error"] == "KFP run ended FAILED" and "webhook" not in alert["delivered"]
    assert "ALERT task_failed: shoprank_nightly.run_pipeline failed" in capsys.readouterr().err


def test_cluster_alert_posts_to_the_connections_webhook(home, monkeypatch, webhook):
    url, received = webhook
    monkeypatch.setenv("SHOPRANK_ALERT_CONNECTION", "shoprank_alerts")
    monkeypatch.setenv("AIRFLOW_CONN_SHOPRANK_ALERTS", json.dumps({"conn_type": "http", "host": url}))
    FailureAlert().notify(CONTEXT)
    (posted,) = received
    assert posted["run_id"] == "scheduled__2024-01-02" and posted["summary"].startswith("shoprank_nightly.run_pipeline")
    assert _lines(load_settings())[0]["delivered"]["webhook"] == url


def test_a_dead_webhook_still_leaves_the_alert(home, monkeypatch):
    monkeypatch.setenv("SHOPRANK_ALERT_CONNECTION", "shoprank_alerts")
    monkeypatch.setenv("AIRFLOW_CONN_SHOPRANK_ALERTS", json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/x"}))
    FailureAlert().notify(CONTEXT)
    (alert,) = _lines(load_settings())
    assert alert["task_id"] == "run_pipeline" and "shoprank_alerts" in alert["delivered"]["webhook_error"]


def test_a_missed_deadline_names_the_run_and_the_deadline(home):
    context = {"dag_run": {"dag_id": "shoprank_nightly", "dag_run_id": "manual__1", "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2024-01-02T06:00:00+00:00"}}
    asyncio.run(deadline_missed(context=context, alert="nightly deadline"))
    (alert,) = _lines(load_settings())
    assert alert["kind"] == "deadline_missed" and alert["run_id"] == "manual__1" and alert["state"] == "running"
    assert alert["deadline"] == "2024-01-02T06:00:00+00:00" and alert["alert"] == "nightly deadline"


def test_the_hourly_roll_alerts_while_a_segment_is_quarantined_and_is_quiet_when_all_rolled(home):
    from shoprank.data.event_log import EventLog, Record
    from shoprank.data.served import QUARANTINE_AFTER
    from shoprank.orchestration.refresh import roll_events as roll_served

    settings = load_settings()
    log = EventLog(settings.event_log_dir)
    log.append(Record("events", [{"event_id": "e1", "event_type": "view", "user_id": "u", "item_id": "i",
                                  "event_time": 1_764_763_200.0, "received_at": 1_764_763_200.0}]))
    log.close()
    assert roll_served(settings)["events"] == 1 and not alerts_path(settings).exists()
    log = EventLog(settings.event_log_dir)
    log.append(Record("served", [{"request_id": "r1", "served_at": 1_764_763_200.0, "route": "recommend",
                                  "items": "i1"}]))  # a list field that is not a list
    log.close()
    for _ in range(QUARANTINE_AFTER):
        done = roll_served(settings)
    assert done["quarantined"] == 1
    alerts = _lines(settings)
    assert [a["kind"] for a in alerts] == ["event_roll"] * QUARANTINE_AFTER
    assert "failing with a data error" in alerts[0]["summary"] and "RecordError" in alerts[0]["summary"]
    assert "1 segment(s)/part(s) in quarantine" in alerts[-1]["summary"]
