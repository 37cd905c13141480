"""Infra-validate serves the candidate for real and writes TF Serving warm-up records."""

import shutil

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from shoprank.features.derived import model_inputs
from shoprank.models.export import WARMUP_FILE
from shoprank.serving.registry.infra_validate import infra_validate
from tests.conftest import tiny_examples


def test_good_model_passes_and_gets_warmup_requests(tmp_path, tiny_model_dir):
    model = shutil.copytree(tiny_model_dir, tmp_path / "candidate")
    latencies = infra_validate(model, "ranker", model_inputs(tiny_examples(16, seed=3)), n_warmup=5)
    assert latencies["batch_size"] == 16 and latencies["rest_batch_ms"] > 0 and latencies["grpc_batch_ms"] > 0
    records = list(tf.data.TFRecordDataset(str(model / WARMUP_FILE)).as_numpy_iterator())
    assert len(records) == 5
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    assert log.predict_log.request.model_spec.name == "ranker"
    assert "ui_score" in log.predict_log.request.inputs


def test_requests_that_do_not_fit_the_signature_fail(tmp_path, tiny_model_dir):
    model = shutil.copytree(tiny_model_dir, tmp_path / "candidate")
    inputs = model_inputs(tiny_examples(4))
    inputs.pop("item_category")
    with pytest.raises(Exception, match="item_category"):
        infra_validate(model, "ranker", inputs)
    assert not (model / WARMUP_FILE).exists()
