"""The TensorFlow release of the cluster's model server, and the check that training matches it.

Why: a SavedModel exported by a newer TensorFlow can use ops an older TF Serving does not know, and
then fails to load in the cluster although it loaded everywhere in the pipeline. Infra-validation
loads and warms each version under this process's TensorFlow, so it only proves anything when that
TensorFlow is the serving image's release: `check_serving_tf` refuses to validate otherwise.

`TF_SERVING_VERSION` is the one figure; `infra/k8s/platform/versions.env`, the TF Serving image tags
in `infra/k8s/` and the locked `tensorflow` and `tensorflow-serving-api` releases are held equal to
it by `tests/serving/test_serving_version.py`, so bumping one without the others fails CI.
"""

from __future__ import annotations

TF_SERVING_VERSION = "2.21.0"  # tensorflow/serving:<this> (and -gpu) in infra/k8s; training's tensorflow too


class ServingVersionMismatch(RuntimeError):
    """Infra-validation cannot speak for the cluster's model server: the TensorFlow releases differ."""


def check_serving_tf(installed: str | None = None, serving: str = TF_SERVING_VERSION) -> str:
    """This process's TensorFlow release, if it is the serving image's; else a clear refusal."""
    if installed is None:
        import tensorflow as tf

        installed = tf.__version__
    if installed != serving:
        raise ServingVersionMismatch(
            f"infra-validation runs TensorFlow {installed} but the cluster serves with tensorflow/serving:{serving}: "
            f"a model that loads here may not load there. Align them: pin tensorflow=={serving} in pyproject.toml, "
            f"or move TF_SERVING_VERSION (shoprank/serving/registry/serving_version.py) and the images in "
            f"infra/k8s/ to a TF Serving release that matches {installed}")
    return installed
