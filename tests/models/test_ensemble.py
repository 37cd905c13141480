"""Seed ensembles: the served score is exactly the mean of the members one would train alone."""

import numpy as np
import pytest
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.models.ensemble import member_seeds
from shoprank.models.export import export_saved_model
from shoprank.models.train import TrainConfig, train_ranker
from tests.conftest import tiny_examples


def test_members_get_distinct_seeds_and_the_first_is_the_runs_own():
    assert member_seeds(7, 1) == [7]
    seeds = [s for run in (0, 1, 2) for s in member_seeds(run, 3)]
    assert len(set(seeds)) == 9  # three runs of three members never train the same member twice
    with pytest.raises(ValueError, match="at least one member, got ensemble=0"):
        member_seeds(0, 0)


def test_ensemble_scores_are_the_mean_of_separately_trained_members(tmp_path):
    train, valid, rows = tiny_examples(), tiny_examples(200, 1), tiny_examples(60, 2)
    base = TrainConfig(epochs=1, batch_size=128, seed=4)
    ensemble = train_ranker(train, valid, TrainConfig(epochs=1, batch_size=128, seed=4, ensemble=2),
                            log_dir=tmp_path / "tb", verbose=0)
    alone = [train_ranker(train, valid, TrainConfig(epochs=1, batch_size=128, seed=s), verbose=0)
             for s in member_seeds(base.seed, 2)]
    x = model_inputs(rows)
    expected = np.mean([m.model.predict(x, verbose=0).reshape(-1) for m in alone], axis=0)
    np.testing.assert_allclose(ensemble.model.predict(x, verbose=0).reshape(-1), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, alone[0].model.predict(x, verbose=0).reshape(-1))  # the members differ
    assert [m["seed"] for m in ensemble.extra["members"]] == [4, 1004]
    assert {p.name for p in (tmp_path / "tb").iterdir()} == {"member_0", "member_1"}

    # one SavedModel with the plain ranker's contract: the same named inputs, one `score` per row
    served = tf.saved_model.load(str(export_saved_model(ensemble.model, tmp_path / "model")))
    fn = served.signatures["serving_default"]
    _, specs = fn.structured_input_signature
    assert set(specs) == set(x)
    out = fn(**{k: tf.constant(x[k], dtype=specs[k].dtype) for k in specs})
    assert list(out) == ["score"]
    np.testing.assert_allclose(out["score"].numpy(), expected, rtol=1e-5, atol=1e-6)
