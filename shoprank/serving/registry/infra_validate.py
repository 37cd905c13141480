"""Infra-validate: load a candidate SavedModel in a model server, send real requests over REST and
gRPC, check the answers against the model called directly, and write TF Serving warm-up requests.

A model that loads in Python but fails in the server (wrong signature, string/float mix-ups,
non-finite scores) is caught here, before push. It runs under the TensorFlow release of the
cluster's TF Serving image (`serving_version`) or not at all, and the server replays the warm-up
requests at load, as TF Serving does, before a single check is made.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from shoprank.models.export import WARMUP_FILE
from shoprank.serving.model_server.client import GrpcClient, RestClient
from shoprank.serving.model_server.server import ModelServer
from shoprank.serving.registry.serving_version import check_serving_tf


def warmup_records(name: str, inputs: dict[str, np.ndarray], n: int) -> list[bytes]:
    """PredictionLog records that TF Serving replays at load time to warm its caches."""
    records = []
    size = len(next(iter(inputs.values())))
    for start in range(min(n, size)):
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name,
                                                                             signature_name="serving_default"))
        for key, value in inputs.items():
            array = np.asarray(value[start:start + 1])
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array.astype(bytes) if array.dtype == object else array))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def infra_validate(model_dir: Path, name: str, inputs: dict[str, np.ndarray], n_warmup: int = 10,
                   output: str = "score") -> dict[str, float]:
    """Serve `model_dir` from a scratch base path, its warm-up requests replayed at load; raise if any
    check fails (`output` must come back over REST and gRPC as the SavedModel itself computes it);
    return latencies. The warm-up requests are written into `model_dir` only once it passed."""
    tf_version = check_serving_tf()
    model_dir = Path(model_dir)
    expected = tf.saved_model.load(str(model_dir)).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in inputs.items()})[output].numpy()
    if not np.all(np.isfinite(expected)):
        raise ValueError(f"{model_dir}: model returns non-finite scores on the validation requests")
    records = warmup_records(name, inputs, n_warmup)
    scratch = Path(tempfile.mkdtemp(prefix="infra-validate-"))
    try:
        shutil.copytree(model_dir, scratch / name / "1")
        _write_warmup(scratch / name / "1", records)
        server = ModelServer(str(scratch), rest_port=0, grpc_port=0, poll_seconds=3600).start()
        try:
            rest, grpc_client = RestClient(f"http://127.0.0.1:{server.rest_port}"), GrpcClient(
                f"127.0.0.1:{server.grpc_port}")
            rest.wait_ready(name, timeout=30)
            started = time.perf_counter()
            via_rest = rest.predict(name, inputs)[output]
            rest_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            via_grpc = grpc_client.predict(name, inputs)[output]
            grpc_ms = (time.perf_counter() - started) * 1000
            grpc_client.close()
        finally:
            server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for label, got in (("REST", via_rest), ("gRPC", via_grpc)):
        if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-5):
            raise ValueError(f"{label} predictions differ from the SavedModel's own: "
                             f"max |diff| {np.max(np.abs(got - expected)) if got.shape == expected.shape else 'shape'}")
    _write_warmup(model_dir, records)
    return {"rest_batch_ms": rest_ms, "grpc_batch_ms": grpc_ms, "batch_size": float(len(expected)),
            "warmup_requests": float(len(records)), "tensorflow": tf_version}


def _write_warmup(version_dir: Path, records: list[bytes]) -> None:
    warmup = version_dir / WARMUP_FILE
    warmup.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(warmup)) as writer:
        for record in records:
            writer.write(record)
