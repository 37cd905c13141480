"""A model server that speaks TensorFlow Serving's REST and gRPC APIs.

Used where no `tensorflow_model_server` binary exists (it is neither on PyPI nor in Debian), so
clients, tests and the online API talk to exactly the protocol they will meet in production:
REST `GET /v1/models/<name>[/versions/<v>|/labels/<l>]`, `.../metadata`, `POST ...:predict`
(row `instances` and columnar `inputs` formats), `GET /monitoring/prometheus/metrics`, and gRPC
`PredictionService.Predict`, `GetModelMetadata` and `ModelService.GetModelStatus` from
tensorflow-serving-api. Loading rules (warm-up, labels, bad versions) are the repository's; request
batching is `batching.py`, with TF Serving's parameters.

A malformed request is answered, never left hanging: a request that does not fit the signature is
400 / INVALID_ARGUMENT naming the input, a body with a negative or missing length is 400 / 411, a
body over the limit is 413 before any of it is read, and a client that stops sending times out.
SIGTERM stops accepting, lets in-flight requests finish, and exits within five seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from shoprank.serving.model_server.batching import BatchingParameters, QueueFull
from shoprank.serving.model_server.repository import InvalidInput, LoadedModel, ModelRepository
from shoprank.serving.model_server.tensors import from_tensor_proto, to_tensor_proto

ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict)?$"
)
METRICS_PATH = "/monitoring/prometheus/metrics"
MAX_BODY_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 4.0
_STATE_CODES = {"LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
                "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
                "END": get_model_status_pb2.ModelVersionStatus.END}
_LATENCY_BUCKETS_US = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000)


class ServerMetrics:
    """TF Serving's Prometheus metrics (its names), on one registry per server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(":tensorflow:serving:request_count", "Predict requests by model and status",
                                ["model_name", "status"], registry=self.registry)
        self.latency = Histogram(":tensorflow:serving:request_latency", "Predict latency in microseconds",
                                 ["model_name", "API", "entrypoint"], buckets=_LATENCY_BUCKETS_US,
                                 registry=self.registry)
        self.batch_size = Histogram(":tensorflow:serving:batching_session:processed_batch_size",
                                    "Rows per merged batch", buckets=(1, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
                                    registry=self.registry)
        self.loaded = Gauge(":tensorflow:serving:loaded_model_version", "1 for every version serving requests",
                            ["model_name", "model_version"], registry=self.registry)
        self.labels = Gauge(":tensorflow:serving:model_label_version", "The version each label points at",
                            ["model_name", "label"], registry=self.registry)
        self._seen_versions: set[tuple[str, str]] = set()

    def update_models(self, repository: ModelRepository) -> None:
        """Loaded versions 1, unloaded 0 (set, not cleared: clearing is not supported in prometheus_client's
        multiprocess mode, which a process that imports Feast is in)."""
        loaded = {(name, str(v)) for name, versions in repository.loaded().items() for v in versions}
        for key in self._seen_versions - loaded:
            self.loaded.labels(*key).set(0)
        for key in loaded:
            self.loaded.labels(*key).set(1)
        self._seen_versions |= loaded
        for name in repository.loaded():
            for label, version in repository.labels(name).items():
                self.labels.labels(name, label).set(version)


def signature_defs(model: LoadedModel) -> meta_graph_pb2.MetaGraphDef:
    """The SignatureDefs exactly as stored in saved_model.pb (what TF Serving reports)."""
    saved = saved_model_pb2.SavedModel.FromString((Path(model.path) / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0]


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype.kind in ("S", "O"):
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b, otypes=[object])(value).tolist()
    return value.tolist()


def decode_rest_inputs(body: Any) -> tuple[dict[str, Any], bool]:
    """Row (`instances`) or columnar (`inputs`) request to named values; True for row format."""
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object with 'instances' or 'inputs'")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise InvalidInput("'instances' must be a non-empty list of objects keyed by input name")
        names = set().union(*(r.keys() for r in rows))
        for index, row in enumerate(rows):
            lacking = sorted(names - set(row))
            if lacking:
                raise InvalidInput(f"instance {index} lacks input {lacking[0]!r} that other instances have")
        return {n: [r[n] for r in rows] for n in names}, True
    if "inputs" in body and isinstance(body["inputs"], dict):
        return dict(body["inputs"]), False
    raise InvalidInput("request body needs 'instances' (list of objects) or 'inputs' (object of lists)")


class HttpError(Exception):
    def __init__(self, code: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.close = close


class RestHandler(BaseHTTPRequestHandler):
    server_state: ModelServer  # set on the subclass made by ModelServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request before its connection is dropped

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: errors are answered, not logged per line
        pass

    def _send(self, code: int, payload: dict[str, Any] | bytes, content_type: str = "application/json",
              close: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, int | None, str | None, str]:
        match = ROUTE.match(self.path.split("?")[0])
        if not match:
            raise LookupError(f"no route for {self.path}; expected /v1/models/<name>[...]")
        version = int(match["version"]) if match["version"] else None
        return match["name"], version, match["label"], match["verb"] or ""

    def _body(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "chunked bodies are not accepted: send Content-Length", close=True)
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise HttpError(411, "POST needs a Content-Length header", close=True)
        try:
            length = int(raw)
        except ValueError:
            raise HttpError(400, f"Content-Length {raw[:40]!r} is not a number", close=True) from None
        if length < 0:
            raise HttpError(400, f"Content-Length {length} is negative", close=True)
        limit = self.server_state.max_body_bytes
        if length > limit:
            raise HttpError(413, f"request body of {length:,} bytes is over the limit of {limit:,}", close=True)
        try:
            data = self.rfile.read(length)
        except OSError:  # the socket timeout: a client that stopped sending mid-body
            raise HttpError(408, f"request body not received within {self.timeout}s", close=True) from None
        if len(data) < length:
            raise HttpError(400, f"request body ended after {len(data)} of {length} bytes", close=True)
        try:
            return json.loads(data or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise HttpError(400, f"request body is not JSON: {err}") from err

    def _guarded(self, work) -> None:
        state = self.server_state
        if not state.begin_request():
            self._send(503, {"error": "server is shutting down"}, close=True)
            return
        try:
            work()
        except HttpError as err:
            self._send(err.code, {"error": str(err)}, close=err.close)
        except (KeyError, LookupError) as err:
            self._send(404, {"error": str(err).strip("'\"")})
        except QueueFull as err:
            self._send(503, {"error": str(err)})
        except (InvalidInput, ValueError, TypeError, tf.errors.InvalidArgumentError) as err:
            self._send(400, {"error": str(err).splitlines()[0]})
        except Exception as err:  # noqa: BLE001 - a server answers, it never drops the connection silently
            self._send(500, {"error": f"{type(err).__name__}: {err}"})
        finally:
            state.end_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.split("?")[0] == METRICS_PATH:
            self._guarded(lambda: self._send(200, generate_latest(self.server_state.metrics.registry),
                                             "text/plain; version=0.0.4"))
            return
        self._guarded(self._get)

    def _get(self) -> None:
        repository = self.server_state.repository
        name, version, label, verb = self._route()
        if verb == "":
            if label is not None:
                version = repository.get(name, label=label).version
            statuses = repository.status(name)
            shown = [version] if version is not None else list(statuses)
            payload = {"model_version_status": [
                {"version": str(v), "state": statuses[v].state,
                 "status": {"error_code": "UNKNOWN" if statuses[v].error else "OK",
                            "error_message": statuses[v].error}}
                for v in shown if v in statuses
            ]}
            if not payload["model_version_status"]:
                raise KeyError(f"model {name!r} has no version {version}")
            self._send(200, payload)
        elif verb == "/metadata":
            model = repository.get(name, version, label)
            sigs = json_format.MessageToDict(signature_defs(model), preserving_proto_field_name=True)
            self._send(200, {"model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                             "metadata": {"signature_def": {"signature_def": sigs.get("signature_def", {})}}})
        else:
            self._send(405, {"error": "use POST for :predict"})

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self._guarded(self._post)

    def _post(self) -> None:
        name, version, label, verb = self._route()
        if verb != ":predict":
            raise HttpError(405, f"POST is only for :predict, not {self.path}")
        body = self._body()
        inputs, row_format = decode_rest_inputs(body)
        started = time.perf_counter()
        model = self.server_state.repository.get(name, version, label)
        try:
            outputs = model.predict(inputs, body.get("signature_name"))
        except Exception:
            self.server_state.metrics.requests.labels(name, "INVALID_ARGUMENT").inc()
            raise
        self.server_state.observe(name, "predict", "REST", started)
        if row_format:
            if len(outputs) == 1:
                self._send(200, {"predictions": _jsonable(next(iter(outputs.values())))})
            else:
                n = len(next(iter(outputs.values())))
                rows = [{k: _jsonable(v[i:i + 1])[0] for k, v in outputs.items()} for i in range(n)]
                self._send(200, {"predictions": rows})
        elif len(outputs) == 1:  # TF Serving omits the name of a single output tensor
            self._send(200, {"outputs": _jsonable(next(iter(outputs.values())))})
        else:
            self._send(200, {"outputs": {k: _jsonable(v) for k, v in outputs.items()}})

    do_PUT = do_DELETE = do_PATCH = lambda self: self._guarded(  # noqa: E731, N815
        lambda: self._send(405, {"error": f"{self.command} is not supported; GET status/metadata, POST :predict"}))


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, state: ModelServer) -> None:
        self.state = state

    def _model(self, spec: Any, context: grpc.ServicerContext) -> LoadedModel:
        version = spec.version.value if spec.HasField("version") else None
        label = spec.version_label or None
        try:
            return self.state.repository.get(spec.name, version, label)
        except KeyError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err).strip("'\""))
            raise

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        if not self.state.begin_request():
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        try:
            started = time.perf_counter()
            model = self._model(request.model_spec, context)
            try:
                inputs = {k: from_tensor_proto(v) for k, v in request.inputs.items()}
                outputs = model.predict(inputs, request.model_spec.signature_name or None)
            except QueueFull as err:
                self.state.metrics.requests.labels(model.name, "UNAVAILABLE").inc()
                context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
            except (ValueError, KeyError, TypeError, tf.errors.InvalidArgumentError) as err:
                self.state.metrics.requests.labels(model.name, "INVALID_ARGUMENT").inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err).strip("'\"").splitlines()[0])
            response = predict_pb2.PredictResponse()
            response.model_spec.name = model.name
            response.model_spec.version.value = model.version
            response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
            for key, value in outputs.items():
                if request.output_filter and key not in request.output_filter:
                    continue
                response.outputs[key].CopyFrom(to_tensor_proto(value))
            self.state.observe(model.name, "predict", "GRPC", started)
            return response
        finally:
            self.state.end_request()

    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) not in ([], ["signature_def"]):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only metadata_field 'signature_def' is supported")
        model = self._model(request.model_spec, context)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in signature_defs(model).signature_def.items():
            sig_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(sig_map)
        return response


class ModelStatusServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            statuses = self.repository.status(request.model_spec.name)
        except KeyError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err).strip("'\""))
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state in statuses.items():
            if request.model_spec.HasField("version") and version != request.model_spec.version.value:
                continue
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = _STATE_CODES[state.state]
            entry.status.error_code = 2 if state.error else 0  # UNKNOWN / OK
            entry.status.error_message = state.error
        return response


class ModelServer:
    """REST + gRPC over one ModelRepository, polling the base path for new versions."""

    def __init__(self, base_path: str, rest_port: int = 8501, grpc_port: int = 8500, host: str = "127.0.0.1",
                 poll_seconds: float = 1.0, endpoint_url: str | None = None,
                 batching: BatchingParameters | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 grpc_threads: int = 16, client_timeout_s: float = 30.0) -> None:
        self.metrics = ServerMetrics()
        self.repository = ModelRepository(base_path, endpoint_url, batching=batching,
                                          observe_batch=self.metrics.batch_size.observe)
        self.repository.on_change.append(lambda: self.metrics.update_models(self.repository))
        self.max_body_bytes = max_body_bytes
        self.repository.refresh()
        self.metrics.update_models(self.repository)
        handler = type("BoundRestHandler", (RestHandler,), {"server_state": self, "timeout": client_timeout_s})
        self.http = ThreadingHTTPServer((host, rest_port), handler)
        self.http.daemon_threads = True
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=grpc_threads),
                                options=[("grpc.max_receive_message_length", max_body_bytes)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self), self.grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatusServicer(self.repository), self.grpc)
        self.grpc_port = self.grpc.add_insecure_port(f"{host}:{grpc_port}")
        self.rest_port = self.http.server_address[1]
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._in_flight = 0
        self._draining = False
        self._flight_lock = threading.Condition()
        self._started = False

    def begin_request(self) -> bool:
        with self._flight_lock:
            if self._draining:
                return False
            self._in_flight += 1
            return True

    def end_request(self) -> None:
        with self._flight_lock:
            self._in_flight -= 1
            self._flight_lock.notify_all()

    def observe(self, name: str, api: str, entrypoint: str, started: float) -> None:
        self.metrics.requests.labels(name, "OK").inc()
        self.metrics.latency.labels(name, api, entrypoint).observe((time.perf_counter() - started) * 1e6)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.repository.refresh()
            except Exception as err:  # keep serving the loaded versions; say why the poll failed
                print(f"model server: refresh failed: {err}", flush=True)

    def start(self) -> ModelServer:
        self.grpc.start()
        self._started = True
        threading.Thread(target=self.http.serve_forever, name="rest", daemon=True).start()
        threading.Thread(target=self._poll, name="poll", daemon=True).start()
        return self

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Refuse new requests, let in-flight ones finish (up to `drain_seconds`), then close."""
        deadline = time.monotonic() + drain_seconds
        with self._flight_lock:
            self._draining = True
        self._stop.set()
        grace = self.grpc.stop(grace=max(drain_seconds - 0.5, 0.1))
        if self._started:
            self.http.shutdown()
        self.http.server_close()
        with self._flight_lock:
            while self._in_flight > 0 and time.monotonic() < deadline:
                self._flight_lock.wait(deadline - time.monotonic())
        grace.wait(max(deadline - time.monotonic(), 0))
        self.repository.close()

    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT; then drain and exit (the process, within five seconds)."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        print(f"model server: REST :{self.rest_port}  gRPC :{self.grpc_port}  models "
              f"{self.repository.loaded()} from {self.repository.base_path}", flush=True)
        stop.wait()
        started = time.monotonic()
        print(f"model server: stopping, {self._in_flight} requests in flight", flush=True)
        self.stop()
        print(f"model server: stopped in {time.monotonic() - started:.1f}s", flush=True)
        # Threads TensorFlow or gRPC still hold must not keep the process past its deadline.
        os._exit(0)
