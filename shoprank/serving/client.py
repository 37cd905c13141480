"""Clients for the TF Serving APIs (REST and gRPC), identical for the real server and ours."""

from __future__ import annotations

import time
from typing import Any

import grpc
import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc


class ModelServerError(RuntimeError):
    """The model server refused or could not answer a request; the message says which and why."""


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
        except requests.RequestException as err:
            raise ModelServerError(f"model server at {self.url} unreachable: {err}") from err
        payload = response.json() if response.content else {}
        if response.status_code != 200:
            raise ModelServerError(f"{method} {path}: HTTP {response.status_code}: {payload.get('error', payload)}")
        return payload

    def status(self, name: str, version: int | None = None) -> dict[str, Any]:
        return self._call("GET", _model_path(name, version, None))

    def metadata(self, name: str, version: int | None = None) -> dict[str, Any]:
        return self._call("GET", _model_path(name, version, None) + "/metadata")

    def predict(self, name: str, inputs: dict[str, np.ndarray], version: int | None = None,
                label: str | None = None) -> dict[str, np.ndarray]:
        body = {"signature_name": "serving_default",
                "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        outputs = self._call("POST", _model_path(name, version, label) + ":predict", json=body)["outputs"]
        if not isinstance(outputs, dict):  # TF Serving omits the name of a single output tensor
            outputs = {self.output_names(name)[0]: outputs}
        return {k: np.asarray(v) for k, v in outputs.items()}

    def input_names(self, name: str) -> list[str]:
        """Input tensor names of the serving signature: what a request must carry, no more."""
        sigs = self.metadata(name)["metadata"]["signature_def"]["signature_def"]
        return sorted(sigs["serving_default"]["inputs"])

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
        raise ModelServerError(f"model {name!r} not AVAILABLE at {self.url} after {timeout:.0f}s: {last}")


class GrpcClient:
    def __init__(self, target: str, timeout: float = 10.0) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.timeout = timeout

    def predict(self, name: str, inputs: dict[str, np.ndarray], version: int | None = None,
                label: str | None = None) -> dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = "serving_default"
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        for key, value in inputs.items():
            array = np.asarray(value)
            if array.dtype == object:
                array = array.astype(bytes)
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise ModelServerError(f"gRPC Predict {name}: {err.code().name}: {err.details()}") from err
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def input_names(self, name: str) -> list[str]:
        """Input tensor names of the serving signature, from GetModelMetadata."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = name
        try:
            response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise ModelServerError(f"gRPC GetModelMetadata {name}: {err.code().name}: {err.details()}") from err
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return sorted(sig_map.signature_def["serving_default"].inputs)

    def close(self) -> None:
        self.channel.close()
