"""The model server speaks TF Serving's REST and gRPC APIs (clients from tensorflow-serving-api) and
answers every malformed request with a clear error instead of hanging or crashing."""

import shutil
import socket
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from shoprank.features.derived import MODEL_INPUTS, model_inputs
from shoprank.serving.model_server.client import GrpcClient, ModelServerError, RestClient
from shoprank.serving.model_server.server import ModelServer
from shoprank.serving.model_server.tensors import from_tensor_proto, to_tensor_proto
from tests.conftest import tiny_examples


@pytest.fixture
def served(tmp_path, tiny_model_dir):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    server = ModelServer(str(base), rest_port=0, grpc_port=0, poll_seconds=0.2, max_body_bytes=2_000_000,
                         client_timeout_s=1.0).start()
    yield server, base
    server.stop()


@pytest.fixture
def inputs():
    return model_inputs(tiny_examples(8, seed=9))


def _expected(model_dir, inputs):
    fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    return fn(**{k: tf.constant(v) for k, v in inputs.items()})["score"].numpy()


def _raw_http(port: int, request: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes, return what the server answers (it must answer or close within `wait`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):  # these answers close the connection: read to the end
                chunks.append(chunk)
        except TimeoutError:
            pytest.fail(f"server did not answer {request[:60]!r} within {wait}s")
    return b"".join(chunks)


def test_rest_status_metadata_and_predict(served, inputs, tiny_model_dir):
    server, _ = served
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/ranker"
    status = requests.get(url, timeout=5).json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                                "status": {"error_code": "OK", "error_message": ""}}]}
    meta = requests.get(url + "/metadata", timeout=5).json()
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sorted(sig["inputs"]) == sorted(MODEL_INPUTS) and list(sig["outputs"]) == ["score"]
    expected = _expected(tiny_model_dir, inputs)
    body = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
    columnar = requests.post(url + ":predict", json=body, timeout=5)
    np.testing.assert_allclose(columnar.json()["outputs"], expected, rtol=1e-5)  # one output: unnamed
    via_client = RestClient(url.rsplit("/v1", 1)[0]).predict("ranker", inputs)["score"]
    np.testing.assert_allclose(via_client, expected, rtol=1e-5)  # the client names it from /metadata
    rows = [{k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in inputs.items()}
            for i in range(len(expected))]
    row_format = requests.post(url + "/versions/1:predict", json={"instances": rows}, timeout=5)
    np.testing.assert_allclose(row_format.json()["predictions"], expected, rtol=1e-5)


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b["inputs"].pop("ui_score"), "missing input 'ui_score'"),
    (lambda b: b["inputs"].update(surprise=[1.0] * 8), "input 'surprise' is not in the signature"),
    (lambda b: b["inputs"].update(ui_score=["x"] * 8), "input 'ui_score' expects float32 values, got strings"),
    (lambda b: b["inputs"].update(item_category=[1.0] * 8), "input 'item_category' expects string values"),
    (lambda b: b["inputs"].update(ui_score=[[1.0, 2.0]] * 8), "input 'ui_score' expects shape [None]"),
    (lambda b: b["inputs"].update(ui_score=[1.0, [2.0]] + [1.0] * 6), "'ui_score' is not a rectangular array"),
    (lambda b: b["inputs"].update(ui_score=[1.0] * 3), "different batch sizes"),
    (lambda b: b["inputs"].update(ui_score=[None] * 8), "input 'ui_score' expects float32 values"),
])
def test_rest_requests_that_do_not_fit_the_signature_are_400_naming_the_input(served, inputs, change, message):
    server, _ = served
    body = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
    change(body)
    bad = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/ranker:predict", json=body, timeout=5)
    assert bad.status_code == 400 and message in bad.json()["error"], bad.text


def test_rest_errors_are_tf_serving_shaped(served, inputs):
    server, _ = served
    base = f"http://127.0.0.1:{server.rest_port}/v1/models"
    missing = requests.get(f"{base}/nope", timeout=5)
    assert missing.status_code == 404 and "no model named 'nope'" in missing.json()["error"]
    garbage = requests.post(f"{base}/ranker:predict", data=b"{not json", timeout=5)
    assert garbage.status_code == 400 and "not JSON" in garbage.json()["error"]
    not_object = requests.post(f"{base}/ranker:predict", json=[1, 2], timeout=5)
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["error"]
    rows = [{"ui_score": 1.0}, {"ui_cooc_score": 2.0}]
    uneven = requests.post(f"{base}/ranker:predict", json={"instances": rows}, timeout=5)
    assert uneven.status_code == 400 and "instance 0 lacks input 'ui_cooc_score'" in uneven.json()["error"]
    with pytest.raises(ModelServerError, match="HTTP 404") as err:
        RestClient(f"http://127.0.0.1:{server.rest_port}").predict("ranker", inputs, version=7)
    assert err.value.reason == "not_found"
    assert requests.delete(f"{base}/ranker", timeout=5).status_code == 405


@pytest.mark.parametrize(("headers", "status", "message"), [
    ("Content-Length: -5", 400, b"is negative"),
    ("Content-Length: banana", 400, b"not a number"),
    ("Content-Length: 999999999999", 413, b"over the limit"),
    ("Transfer-Encoding: chunked", 411, b"chunked bodies"),
    ("X-Nothing: 1", 411, b"needs a Content-Length"),
])
def test_bad_content_length_is_answered_at_once(served, headers, status, message):
    server, _ = served
    started = time.monotonic()
    answer = _raw_http(server.rest_port, f"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n{headers}\r\n\r\n"
                       .encode())
    assert answer.startswith(f"HTTP/1.1 {status}".encode()) and message in answer, answer[:300]
    assert time.monotonic() - started < 2.0  # never waits for a body it will not use


def test_body_over_the_limit_and_stalled_clients(served):
    server, _ = served
    too_big = b"{" + b" " * 2_100_000 + b"}"
    response = requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/ranker:predict", data=too_big, timeout=5)
    assert response.status_code == 413
    # a client that promises 100 bytes and sends 10 is cut off after the client timeout, not held forever
    started = time.monotonic()
    answer = _raw_http(server.rest_port, b"POST /v1/models/ranker:predict HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: 100\r\n\r\n{\"inputs\":", wait=5)
    assert time.monotonic() - started < 4.0 and b" 408 " in answer[:20] and b"not received within" in answer
    assert requests.get(f"http://127.0.0.1:{server.rest_port}/v1/models/ranker", timeout=5).status_code == 200


def test_grpc_predict_metadata_and_status(served, inputs, tiny_model_dir):
    server, _ = served
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ranker"
    request.model_spec.signature_name = "serving_default"
    for key, value in inputs.items():  # TensorFlow's own converter: what any TF Serving client sends
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value.astype(bytes) if value.dtype == object else value))
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.version.value == 1
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), _expected(tiny_model_dir, inputs),
                               rtol=1e-5)

    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = "ranker"
    meta = stub.GetModelMetadata(meta_request, timeout=10)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(sig_map)
    assert sorted(sig_map.signature_def["serving_default"].inputs) == sorted(MODEL_INPUTS)

    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "ranker"
    status = status_stub.GetModelStatus(status_request, timeout=10)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]

    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.inputs.pop("ui_score"), "missing input 'ui_score'"),
    (lambda r: r.inputs["ui_score"].CopyFrom(to_tensor_proto(np.array(["a"] * 8, dtype=object))), "expects float32"),
    (lambda r: r.inputs["ui_score"].CopyFrom(to_tensor_proto(np.ones((8, 2), np.float32))), "expects shape [None]"),
    (lambda r: r.inputs["item_category"].CopyFrom(to_tensor_proto(np.ones(8, np.float32))), "expects string"),
])
def test_grpc_bad_inputs_are_invalid_argument(served, inputs, change, message):
    server, _ = served
    from shoprank.serving.model_server.client import predict_request

    request = predict_request("ranker", inputs)
    change(request)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    assert stub.Predict(predict_request("ranker", inputs), timeout=10).model_spec.version.value == 1  # still serving


def test_tensor_protos_round_trip_like_tensorflows_own():
    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.int64), np.array([True]),
                  np.array(["a", "β"], dtype=object), np.zeros(0, np.float32)):
        def text(array):
            return np.array([v.decode() for v in array.reshape(-1)], dtype=object) if array.dtype == object else array

        encoded = np.array([v.encode() for v in value], dtype=object) if value.dtype == object else value
        np.testing.assert_array_equal(text(tf.make_ndarray(to_tensor_proto(value))), value)
        np.testing.assert_array_equal(text(from_tensor_proto(tf.make_tensor_proto(encoded))), value)
    compact = tf.make_tensor_proto(np.float32(2.5), shape=[3])  # TF's form: one value for the whole shape
    np.testing.assert_array_equal(from_tensor_proto(compact), np.full(3, 2.5, np.float32))


def test_prometheus_metrics_use_tf_serving_names(served, inputs):
    server, _ = served
    url = f"http://127.0.0.1:{server.rest_port}/monitoring/prometheus/metrics"
    ok = ':tensorflow:serving:request_count_total{model_name="ranker",status="OK"} '

    def count(text: str) -> float:  # (a process in prometheus' multiprocess mode keeps counts across servers)
        return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(ok)), 0.0)

    # counted from a first request on: earlier servers in this test process may share the counter
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    client.predict("ranker", inputs)
    before = count(requests.get(url, timeout=5).text)
    assert before >= 1
    client.predict("ranker", inputs)
    text = requests.get(url, timeout=5).text
    assert count(text) == before + 1
    assert ':tensorflow:serving:request_latency_bucket{API="predict",entrypoint="GRPC"' in text
    assert ':tensorflow:serving:loaded_model_version{model_name="ranker",model_version="1"} 1.0' in text
