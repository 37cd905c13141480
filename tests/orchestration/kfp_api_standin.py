"""A local stand-in for the KFP v2beta1 REST API: the endpoints kfp SDK 2.17.3's Client and
shoprank's poller call, answering with the shapes a KFP 2.x backend sends (snake_case keys, empty
fields left out, `finished_at` 1970-01-01 until the run ends, enums as names, 404 as a gRPC status
body). Recorded from kubeflow/pipelines `backend/api/v2beta1/run.proto`, the API server's
converters and a capture of the SDK's requests.

Each created run walks through `script` (one state per GET; the last one repeats), so a test picks
the path a run takes: PENDING, RUNNING, ... SUCCEEDED / FAILED / CANCELED. `failing_tasks` marks tasks
FAILED in `run_details`; `errors_before` answers that many GETs with 503 first (the API restarting).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ZERO_TIME = "1970-01-01T00:00:00Z"
HEALTHZ = {"commit_sha": "unknown", "tag_name": "2.5.0", "multi_user": False, "pipeline_store": "database"}
TASKS = ["receive", "snapshots", "neighbours", "materialise", "training-set", "train", "evaluate", "infra-validate",
         "push"]


@dataclass
class Standin:
    script: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    failing_tasks: list[str] = field(default_factory=list)
    errors_before: int = 0
    on_create: Callable[[dict[str, Any]], None] | None = None  # what the pipeline would do (evaluate's verdict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, str] = field(default_factory=dict)
    gets: dict[str, int] = field(default_factory=dict)  # answered polls per run: its step in the script
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_body(self, run_id: str) -> dict[str, Any]:
        run = self.runs[run_id]
        step = min(self.gets.get(run_id, 0), len(self.script) - 1)
        state = self.script[step]
        done = state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
        tasks = []
        for name in TASKS:
            task_state = ("FAILED" if name in self.failing_tasks and done else
                          "SUCCEEDED" if done or state == "RUNNING" and name == "receive" else
                          "RUNNING" if state == "RUNNING" and name == "snapshots" else None)
            if task_state is None:
                continue
            tasks.append({"run_id": run_id, "task_id": f"{uuid.uuid5(uuid.NAMESPACE_URL, run_id + name)}",
                          "display_name": name, "create_time": run["created_at"],
                          "start_time": run["created_at"], "end_time": "2025-01-15T10:03:00Z" if done else ZERO_TIME,
                          "state": task_state, "child_tasks": [{"pod_name": f"{name}-{run_id[:8]}"}]})
        body = {k: v for k, v in run.items() if k != "_internal"}
        body.update({"state": state, "finished_at": "2025-01-15T10:03:10Z" if done else ZERO_TIME,
                     "state_history": [{"update_time": run["created_at"], "state": s}
                                       for s in dict.fromkeys(self.script[:step + 1])]})
        if tasks:
            body["run_details"] = {"task_details": tasks}
        return body


def _display_name_filter(raw_path: str) -> str | None:
    """The display name a v2beta1 list filter asks for (`{"predicates": [{"key": "display_name",
    "operation": "EQUALS", "string_value": ...}]}`; the server accepts stringValue too)."""
    query = parse_qs(urlsplit(raw_path).query)
    if "filter" not in query:
        return None
    for predicate in json.loads(query["filter"][0]).get("predicates", []):
        if predicate.get("key") == "display_name":
            return predicate.get("string_value", predicate.get("stringValue"))
    return None


def _handler(standin: Standin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, run_id: str) -> None:
            self._send(404, {"code": 5, "message": f"Failed to get a run: Failed to fetch run {run_id}: "
                             f"ResourceNotFoundError: Run {run_id} not found",
                             "details": [{"@type": "type.googleapis.com/google.rpc.Status", "code": 5,
                                          "message": f"Run {run_id} not found"}]})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            with standin.lock:
                standin.requests.append(("GET", self.path, None))
                if path == "/apis/v2beta1/healthz":
                    return self._send(200, HEALTHZ)
                if path == "/apis/v2beta1/experiments":
                    return self._send(200, {})  # none yet: the SDK then creates one
                if path == "/apis/v2beta1/runs":  # list, filtered by display name; polls do not advance
                    wanted = _display_name_filter(self.path)
                    runs = [standin.run_body(run_id) for run_id, run in standin.runs.items()
                            if wanted is None or run["display_name"] == wanted]
                    return self._send(200, {"runs": runs, "total_size": len(runs)} if runs else {})
                if path.startswith("/apis/v2beta1/runs/"):
                    run_id = path.rsplit("/", 1)[1]
                    if run_id not in standin.runs:
                        return self._not_found(run_id)
                    standin.attempts[run_id] = standin.attempts.get(run_id, 0) + 1
                    if standin.attempts[run_id] <= standin.errors_before:
                        return self._send(503, {"code": 14, "message": "upstream connect error"})
                    body = standin.run_body(run_id)
                    standin.gets[run_id] = standin.gets.get(run_id, 0) + 1
                    return self._send(200, body)
            return self._send(404, {"code": 5, "message": f"Not Found: {path}"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            with standin.lock:
                standin.requests.append(("POST", self.path, body))
                if self.path == "/apis/v2beta1/experiments":
                    experiment_id = str(uuid.uuid4())
                    standin.experiments[body["display_name"]] = experiment_id
                    return self._send(200, {"experiment_id": experiment_id, "display_name": body["display_name"],
                                            "created_at": "2025-01-15T10:00:00Z",
                                            "last_run_created_at": ZERO_TIME, "storage_state": "AVAILABLE"})
                if self.path == "/apis/v2beta1/runs":
                    run_id = str(uuid.uuid4())
                    standin.runs[run_id] = {
                        "experiment_id": body["experiment_id"], "run_id": run_id,
                        "display_name": body["display_name"], "storage_state": "AVAILABLE",
                        "pipeline_spec": body["pipeline_spec"], "runtime_config": body.get("runtime_config", {}),
                        "created_at": "2025-01-15T10:00:05Z", "scheduled_at": "2025-01-15T10:00:05Z"}
                    if standin.on_create is not None:
                        standin.on_create(standin.runs[run_id])
                    return self._send(200, standin.run_body(run_id))
            return self._send(404, {"code": 5, "message": f"Not Found: {self.path}"})

    return Handler


class StandinServer:
    """The stand-in on a free loopback port, in a thread, for a `with` block."""

    def __init__(self, standin: Standin):
        self.standin = standin
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandinServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
