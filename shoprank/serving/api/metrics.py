"""Prometheus metrics of the online API.

`shoprank serve-api` gives its workers one fresh PROMETHEUS_MULTIPROC_DIR; each worker writes its
samples there and `/metrics` merges them (prometheus_client's multiprocess mode), so a scrape sees
the whole server, not whichever worker answered it. Whether samples live in files or in memory is
decided process-wide when prometheus_client is first imported (Feast's own metrics module switches
a process to files), so the exposition follows where the samples actually are.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values

_SECONDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STAGE_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def samples_in_files() -> bool:
    """True when this process's metric values live in PROMETHEUS_MULTIPROC_DIR (multiprocess mode)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False)) and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("shoprank_api_requests", "Requests by route and HTTP status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("shoprank_api_request_seconds", "Request latency by route", ["route"],
                                 buckets=_SECONDS, registry=r)
        self.errors = Counter("shoprank_api_errors", "Failed requests by route and reason", ["route", "reason"],
                              registry=r)
        self.stages = Histogram("shoprank_api_stage_seconds", "Time per stage of /recommend", ["stage"],
                                buckets=_STAGE_SECONDS, registry=r)
        self.cold_start = Counter("shoprank_api_cold_start", "Recommendations for users without features",
                                  registry=r)
        self.model_version = Gauge("shoprank_api_model_version", "Ranker version that answered last",
                                   multiprocess_mode="mostrecent", registry=r)
        self.features_age = Gauge("shoprank_api_online_features_age_seconds",
                                  "Seconds since the online store's last materialisation (Feast registry)",
                                  multiprocess_mode="mostrecent", registry=r)
        self.features_items = Gauge("shoprank_api_online_items", "Items in the in-memory item feature table",
                                    multiprocess_mode="mostrecent", registry=r)
        self.events = Counter("shoprank_api_events", "Events taken by POST /events, by outcome "
                              "(accepted, duplicate, rejected)", ["outcome"], registry=r)
        self.served_log_errors = Counter("shoprank_api_served_log_errors", "Served lists that could not be logged",
                                         registry=r)
        self.roll_oldest_age = Gauge("shoprank_api_event_roll_oldest_unrolled_seconds",
                                     "Age of the oldest event-log segment not rolled into parquet yet",
                                     multiprocess_mode="max", registry=r)
        self.roll_quarantined = Gauge("shoprank_api_event_roll_quarantined",
                                      "Event-log segments and parts the roll moved to the quarantine",
                                      multiprocess_mode="max", registry=r)
        self.roll_failing = Gauge("shoprank_api_event_roll_failing_segments",
                                  "Segments whose last roll failed with a data error (kept, retried)",
                                  multiprocess_mode="max", registry=r)
        self.roll_last_error = Gauge("shoprank_api_event_roll_last_error_timestamp_seconds",
                                     "When the last roll failed (0: none since start); the log says why",
                                     multiprocess_mode="max", registry=r)
        self.ready = Gauge("shoprank_api_ready", "1 when features and model are loaded", multiprocess_mode="min",
                           registry=r)

    def exposition(self) -> bytes:
        if samples_in_files():
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
