"""A model server that speaks TensorFlow Serving's REST and gRPC APIs.

Used where no `tensorflow_model_server` binary exists (it is neither on PyPI nor in Debian), so
clients, tests and the online API talk to exactly the protocol they will meet in production:
REST `GET /v1/models/<name>[/versions/<v>|/labels/<l>]`, `.../metadata`, `POST ...:predict`
(row `instances` and columnar `inputs` formats), and gRPC `PredictionService.Predict`,
`GetModelMetadata` and `ModelService.GetModelStatus` from tensorflow-serving-api.
"""

from __future__ import annotations

import json
import re
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
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from shoprank.serving.repository import LoadedModel, ModelRepository

ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict)?$"
)


def signature_defs(model: LoadedModel) -> meta_graph_pb2.MetaGraphDef:
    """The SignatureDefs exactly as stored in saved_model.pb (what TF Serving reports)."""
    saved = saved_model_pb2.SavedModel.FromString((Path(model.path) / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0]


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype.kind in ("S", "O"):
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b, otypes=[object])(value).tolist()
    return value.tolist()


def decode_rest_inputs(body: dict[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    """Row (`instances`) or columnar (`inputs`) request to named arrays; True for row format."""
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise ValueError("'instances' must be a non-empty list of objects keyed by input name")
        names = rows[0].keys()
        return {n: np.asarray([r[n] for r in rows]) for n in names}, True
    if "inputs" in body and isinstance(body["inputs"], dict):
        return {n: np.asarray(v) for n, v in body["inputs"].items()}, False
    raise ValueError("request body needs 'instances' (list of objects) or 'inputs' (object of lists)")


class RestHandler(BaseHTTPRequestHandler):
    repository: ModelRepository  # set on the subclass made by serve()
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: one line per error only
        pass

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, int | None, str | None, str]:
        match = ROUTE.match(self.path.split("?")[0])
        if not match:
            raise LookupError(f"no route for {self.path}; expected /v1/models/<name>[...]")
        version = int(match["version"]) if match["version"] else None
        return match["name"], version, match["label"], match["verb"] or ""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        try:
            name, version, label, verb = self._route()
            if verb == "":
                statuses = self.repository.status(name)
                shown = [version] if version is not None else sorted(statuses, reverse=True)
                payload = {"model_version_status": [
                    {"version": str(v), "state": statuses[v], "status": {"error_code": "OK", "error_message": ""}}
                    for v in shown if v in statuses
                ]}
                if not payload["model_version_status"]:
                    raise KeyError(f"model {name!r} has no version {version}")
                self._send(200, payload)
            elif verb == "/metadata":
                model = self.repository.get(name, version, label)
                sigs = json_format.MessageToDict(signature_defs(model), preserving_proto_field_name=True)
                self._send(200, {"model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                                 "metadata": {"signature_def": {"signature_def": sigs.get("signature_def", {})}}})
            else:
                self._send(405, {"error": "use POST for :predict"})
        except (KeyError, LookupError) as err:
            self._send(404, {"error": str(err).strip("'\"")})

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        try:
            name, version, label, verb = self._route()
            if verb != ":predict":
                self._send(405, {"error": f"POST is only for :predict, not {self.path}"})
                return
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as err:
                raise ValueError(f"request body is not JSON: {err}") from err
            inputs, row_format = decode_rest_inputs(body)
            model = self.repository.get(name, version, label)
            outputs = model.predict(inputs, body.get("signature_name"))
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
        except (KeyError, LookupError) as err:
            self._send(404, {"error": str(err).strip("'\"")})
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as err:
            self._send(400, {"error": str(err)})


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self.repository = repository

    def _model(self, spec: Any, context: grpc.ServicerContext) -> LoadedModel:
        version = spec.version.value if spec.HasField("version") else None
        label = spec.version_label or None
        try:
            return self.repository.get(spec.name, version, label)
        except KeyError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err).strip("'\""))
            raise

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        model = self._model(request.model_spec, context)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = model.predict(inputs, request.model_spec.signature_name or None)
        except (ValueError, KeyError, tf.errors.InvalidArgumentError) as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for key, value in outputs.items():
            if request.output_filter and key not in request.output_filter:
                continue
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

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
        for version in sorted(statuses, reverse=True):
            entry = response.model_version_status.add()
            entry.version = version
            entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return response


class ModelServer:
    """REST + gRPC over one ModelRepository, polling the base path for new versions."""

    def __init__(self, base_path: str, rest_port: int = 8501, grpc_port: int = 8500, host: str = "127.0.0.1",
                 poll_seconds: float = 5.0, endpoint_url: str | None = None) -> None:
        self.repository = ModelRepository(base_path, endpoint_url)
        self.repository.refresh()
        handler = type("BoundRestHandler", (RestHandler,), {"repository": self.repository})
        self.http = ThreadingHTTPServer((host, rest_port), handler)
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.repository), self.grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatusServicer(self.repository), self.grpc)
        self.grpc_port = self.grpc.add_insecure_port(f"{host}:{grpc_port}")
        self.rest_port = self.http.server_address[1]
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.repository.refresh()
            except Exception as err:  # keep serving the loaded versions; say why the new one failed
                print(f"model server: refresh failed: {err}", flush=True)

    def start(self) -> ModelServer:
        self.grpc.start()
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        threading.Thread(target=self._poll, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.http.shutdown()
        self.http.server_close()
        self.grpc.stop(grace=1)

    def serve_forever(self) -> None:
        self.start()
        print(f"model server: REST :{self.rest_port}  gRPC :{self.grpc_port}  models "
              f"{self.repository.model_names()} from {self.repository.base_path}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()
