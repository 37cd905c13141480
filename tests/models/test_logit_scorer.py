"""A listwise ranker's best logits saturate the float32 sigmoid; the logit scorer keeps their order."""

import numpy as np

from shoprank.features.derived import model_inputs
from shoprank.models.ranker import build_ranker, logit_scorer
from tests.conftest import tiny_examples


def test_the_logit_scorer_keeps_the_order_the_sigmoid_loses():
    inputs = model_inputs(tiny_examples(64, seed=3))
    model = build_ranker(inputs)
    weights, bias = model.get_layer("logit").get_weights()
    model.get_layer("logit").set_weights([weights, bias + 40.0])  # every logit far past saturation
    sigmoid = model.predict(inputs, verbose=0).reshape(-1)
    logits = logit_scorer(model).predict(inputs, verbose=0).reshape(-1)
    assert np.all(sigmoid == 1.0)  # the served probability can no longer rank
    assert len(np.unique(logits)) > 32  # the logit still does
    assert np.all(np.isfinite(logits)) and logits.min() > 20
