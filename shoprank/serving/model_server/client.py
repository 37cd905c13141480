"""Clients for the TF Serving APIs (REST and gRPC), identical for the real server and ours.

Every call has a deadline, and every failure is a `ModelServerError` whose `reason` says what kind
(unavailable, timeout, invalid_argument, not_found, error), so the online API can answer 503 with
that reason. The gRPC clients (blocking and asyncio) report which version served each prediction:
TF Serving puts it in every PredictResponse, which is how a caller notices a new version at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import requests
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from shoprank.serving.model_server.tensors import fill_tensor_proto, from_tensor_proto


class ModelServerError(RuntimeError):
    """The model server refused or could not answer a request; the message says which and why."""

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


_GRPC_REASONS = {grpc.StatusCode.UNAVAILABLE: "unavailable", grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
                 grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument", grpc.StatusCode.NOT_FOUND: "not_found",
                 grpc.StatusCode.RESOURCE_EXHAUSTED: "unavailable", grpc.StatusCode.CANCELLED: "unavailable"}


@dataclass(frozen=True)
class Prediction:
    outputs: dict[str, np.ndarray]
    version: int  # the version that answered (0 when the server does not say)


def _model_path(name: str, version: int | None, label: str | None) -> str:
    if version is not None:
        return f"/v1/models/{name}/versions/{version}"
    if label is not None:
        return f"/v1/models/{name}/labels/{label}"
    return f"/v1/models/{name}"


class RestClient:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self._output_names: dict[str, list[str]] = {}

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout as err:
            raise ModelServerError(f"model server at {self.url}: no answer within {self.timeout}s", "timeout") from err
        except requests.RequestException as err:
            raise ModelServerError(f"model server at {self.url} unreachable: {err}", "unavailable") from err
        try:
            payload = response.json() if response.content else {}
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code != 200:
            reason = {400: "invalid_argument", 404: "not_found", 503: "unavailable"}.get(response.status_code, "error")
            raise ModelServerError(f"{method} {path}: HTTP {response.status_code}: {payload.get('error', payload)}",
                                   reason)
        return payload

    def status(self, name: str, version: int | None = None) -> dict[str, Any]:
        return self._call("GET", _model_path(name, version, None))

    def metadata(self, name: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
        return self._call("GET", _model_path(name, version, label) + "/metadata")

    def predict(self, name: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                label: str | None = None) -> dict[str, np.ndarray]:
        body = {"signature_name": "serving_default",
                "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        outputs = self._call("POST", _model_path(name, version, label) + ":predict", json=body)["outputs"]
        if not isinstance(outputs, dict):  # TF Serving omits the name of a single output tensor
            outputs = {self.output_names(name)[0]: outputs}
        return {k: np.asarray(v) for k, v in outputs.items()}

    def signature(self, name: str, version: int | None = None, label: str | None = None) -> tuple[int, list[str]]:
        """(version, input names) of the serving signature the server resolves for this spec."""
        meta = self.metadata(name, version, label)
        sigs = meta["metadata"]["signature_def"]["signature_def"]
        return int(meta["model_spec"]["version"]), sorted(sigs["serving_default"]["inputs"])

    def input_names(self, name: str) -> list[str]:
        """Input tensor names of the serving signature: what a request must carry, no more."""
        return self.signature(name)[1]

    def output_names(self, name: str) -> list[str]:
        """Output tensor names of the serving signature, from the metadata endpoint (cached)."""
        if name not in self._output_names:
            sigs = self.metadata(name)["metadata"]["signature_def"]["signature_def"]
            self._output_names[name] = sorted(sigs["serving_default"]["outputs"])
        return self._output_names[name]

    def wait_ready(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the model reports AVAILABLE (servers load models asynchronously)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                status = self.status(name)
                if any(s["state"] == "AVAILABLE" for s in status["model_version_status"]):
                    return status
            except ModelServerError as err:
                last = err
            time.sleep(0.5)
        raise ModelServerError(f"model {name!r} not AVAILABLE at {self.url} after {timeout:.0f}s: {last}",
                               "unavailable")


def predict_request(name: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                    label: str | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        fill_tensor_proto(request.inputs[key], value)
    return request


def metadata_request(name: str, version: int | None = None,
                     label: str | None = None) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


def prediction(response: predict_pb2.PredictResponse) -> Prediction:
    return Prediction({k: from_tensor_proto(v) for k, v in response.outputs.items()},
                      int(response.model_spec.version.value))


def signature_of(response: get_model_metadata_pb2.GetModelMetadataResponse) -> tuple[int, list[str]]:
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    return int(response.model_spec.version.value), sorted(sig_map.signature_def["serving_default"].inputs)


def grpc_error(call: str, name: str, err: grpc.RpcError) -> ModelServerError:
    code = err.code()
    return ModelServerError(f"gRPC {call} {name}: {code.name}: {err.details()}", _GRPC_REASONS.get(code, "error"))


_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.enable_retries", 0)]


class GrpcClient:
    """Blocking gRPC client (CLI, infra-validate, tests)."""

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.timeout = timeout

    def predict_versioned(self, name: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                          label: str | None = None, timeout: float | None = None) -> Prediction:
        try:
            response = self.stub.Predict(predict_request(name, inputs, version, label), timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise grpc_error("Predict", name, err) from err
        return prediction(response)

    def predict(self, name: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                label: str | None = None) -> dict[str, np.ndarray]:
        return self.predict_versioned(name, inputs, version, label).outputs

    def signature(self, name: str, version: int | None = None, label: str | None = None) -> tuple[int, list[str]]:
        try:
            response = self.stub.GetModelMetadata(metadata_request(name, version, label), timeout=self.timeout)
        except grpc.RpcError as err:
            raise grpc_error("GetModelMetadata", name, err) from err
        return signature_of(response)

    def input_names(self, name: str) -> list[str]:
        """Input tensor names of the serving signature, from GetModelMetadata."""
        return self.signature(name)[1]

    def close(self) -> None:
        self.channel.close()


class AsyncGrpcClient:
    """The same calls on grpc.aio, for the online API's event loop (no thread blocked while waiting)."""

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self._stub: prediction_service_pb2_grpc.PredictionServiceStub | None = None
        self._channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        if self._stub is None:  # created lazily: an aio channel belongs to the loop that first uses it
            self._channel = grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        return self._stub

    async def predict_versioned(self, name: str, inputs: Mapping[str, np.ndarray], version: int | None = None,
                                label: str | None = None, timeout: float | None = None) -> Prediction:
        try:
            response = await self.stub.Predict(predict_request(name, inputs, version, label),
                                               timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise grpc_error("Predict", name, err) from err
        return prediction(response)

    async def signature(self, name: str, version: int | None = None,
                        label: str | None = None) -> tuple[int, list[str]]:
        try:
            response = await self.stub.GetModelMetadata(metadata_request(name, version, label), timeout=self.timeout)
        except grpc.RpcError as err:
            raise grpc_error("GetModelMetadata", name, err) from err
        return signature_of(response)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
