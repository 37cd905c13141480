"""Training, infra-validation and the cluster's model server are on one TensorFlow release.

A SavedModel exported by a newer TensorFlow than the cluster's TF Serving can fail to load there,
and a local infra-validation on the newer release would not see it. These tests fail the moment
one of the figures moves without the others.
"""

import re
import shutil
from importlib import metadata
from pathlib import Path

import pytest
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.models.export import WARMUP_FILE
from shoprank.serving.registry import infra_validate as validation
from shoprank.serving.registry.serving_version import TF_SERVING_VERSION, ServingVersionMismatch, check_serving_tf
from tests.conftest import tiny_examples

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"


def test_the_serving_image_training_and_the_lock_are_one_release():
    versions = dict(line.split("=", 1) for line in (K8S / "platform" / "versions.env").read_text().splitlines()
                    if line and not line.startswith("#"))
    assert versions["TF_SERVING_VERSION"] == TF_SERVING_VERSION
    images = re.findall(r"tensorflow/serving:([0-9.]+)(-gpu)?@sha256:",
                        (K8S / "base" / "tf-serving" / "deployment.yaml").read_text()
                        + (K8S / "components" / "gpu-serving" / "kustomization.yaml").read_text())
    assert sorted(images) == [(TF_SERVING_VERSION, ""), (TF_SERVING_VERSION, "-gpu")]
    assert tf.__version__ == TF_SERVING_VERSION  # what training exports with
    assert metadata.version("tensorflow-serving-api") == TF_SERVING_VERSION  # the server's own API release


def test_infra_validation_refuses_to_speak_for_another_release(tmp_path, tiny_model_dir, monkeypatch):
    with pytest.raises(ServingVersionMismatch, match=r"runs TensorFlow 2\.21\.0 but the cluster serves with "
                                                       r"tensorflow/serving:2\.19\.0"):
        check_serving_tf("2.21.0", serving="2.19.0")
    model = shutil.copytree(tiny_model_dir, tmp_path / "candidate")
    monkeypatch.setattr(validation, "check_serving_tf", lambda: check_serving_tf(serving="2.19.0"))
    with pytest.raises(ServingVersionMismatch):
        validation.infra_validate(model, "ranker", model_inputs(tiny_examples(8, seed=3)))
    assert not (model / WARMUP_FILE).exists()  # a refused model gets nothing written into it


def test_the_server_replays_the_warmup_requests_before_any_check(tmp_path, tiny_model_dir, monkeypatch):
    from shoprank.serving.model_server.repository import LoadedModel

    replayed: list[int] = []
    real = LoadedModel.warm_up

    def counting(self):
        replayed.append(real(self))
        return replayed[-1]

    monkeypatch.setattr(LoadedModel, "warm_up", counting)
    model = shutil.copytree(tiny_model_dir, tmp_path / "candidate")
    report = validation.infra_validate(model, "ranker", model_inputs(tiny_examples(16, seed=3)), n_warmup=5)
    assert replayed == [5] and report["warmup_requests"] == 5 and report["tensorflow"] == TF_SERVING_VERSION
