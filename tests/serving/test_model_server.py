"""The model server speaks TF Serving's REST and gRPC APIs (clients from tensorflow-serving-api)."""

import shutil
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
from shoprank.serving.client import GrpcClient, ModelServerError, RestClient
from shoprank.serving.model_server import ModelServer
from shoprank.serving.push import write_labels
from shoprank.storage import open_store
from tests.conftest import tiny_examples


@pytest.fixture
def served(tmp_path, tiny_model_dir):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    server = ModelServer(str(base), rest_port=0, grpc_port=0, poll_seconds=0.2).start()
    yield server, base
    server.stop()


@pytest.fixture
def inputs():
    return model_inputs(tiny_examples(8, seed=9))


def _expected(model_dir, inputs):
    fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    return fn(**{k: tf.constant(v) for k, v in inputs.items()})["score"].numpy()


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


def test_rest_errors_are_tf_serving_shaped(served, inputs):
    server, _ = served
    base = f"http://127.0.0.1:{server.rest_port}/v1/models"
    missing = requests.get(f"{base}/nope", timeout=5)
    assert missing.status_code == 404 and "no model named 'nope'" in missing.json()["error"]
    partial = {k: v.tolist() for k, v in inputs.items() if k != "ui_score"}
    bad = requests.post(f"{base}/ranker:predict", json={"inputs": partial}, timeout=5)
    assert bad.status_code == 400 and "missing ['ui_score']" in bad.json()["error"]
    garbage = requests.post(f"{base}/ranker:predict", data=b"{not json", timeout=5)
    assert garbage.status_code == 400 and "not JSON" in garbage.json()["error"]
    with pytest.raises(ModelServerError, match="HTTP 404"):
        RestClient(f"http://127.0.0.1:{server.rest_port}").predict("ranker", inputs, version=7)


def test_grpc_predict_metadata_and_status(served, inputs, tiny_model_dir):
    server, _ = served
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ranker"
    request.model_spec.signature_name = "serving_default"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value.astype(bytes) if value.dtype == object else value))
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.version.value == 1
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), _expected(tiny_model_dir, inputs), rtol=1e-5)

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


def test_new_version_is_picked_up_and_labels_pin_stable(served, inputs, tiny_model_dir):
    server, base = served
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    half_copied = base / "ranker" / "2"
    shutil.copytree(tiny_model_dir, half_copied, ignore=shutil.ignore_patterns("saved_model.pb"))
    server.repository.refresh()
    assert server.repository.status("ranker") == {1: "AVAILABLE"}  # no saved_model.pb yet: invisible
    shutil.copyfile(tiny_model_dir / "saved_model.pb", half_copied / "saved_model.pb")
    rest = RestClient(f"http://127.0.0.1:{server.rest_port}")
    deadline = time.monotonic() + 10
    while len(rest.status("ranker")["model_version_status"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [s["version"] for s in rest.status("ranker")["model_version_status"]] == ["2", "1"]
    assert server.repository.get("ranker").version == 2  # unlabelled: newest
    write_labels(open_store(str(base)), "ranker", {"stable": 1, "canary": 2})
    assert server.repository.get("ranker").version == 1  # stable pins the default
    assert server.repository.get("ranker", label="canary").version == 2
    assert client.predict("ranker", inputs, label="canary")["score"].shape == (8,)
    client.close()
