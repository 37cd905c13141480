"""The nightly's sequence-model step: trained before the last week, judged on that week's first
purchases through its SavedModel against popularity and production, blessed only then."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation.blessing import SEQUENCE_RULES, load_rules
from shoprank.models import SEQUENCE_MODEL_NAME
from shoprank.orchestration.sequence_step import holdout_cutoff, train_sequence
from shoprank.settings import load_settings

N_ITEMS = 120


def walks(n_users: int = 800, seed: int = 0) -> pd.DataFrame:
    """Pseudonymised purchases: each shopper walks the catalogue in order, one item a day, the last
    days of the walk inside the final week (their next items follow from the last one; popularity
    cannot tell which)."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2026-03-01", tz="UTC")
    rows = []
    for u in range(n_users):
        first, length = rng.integers(N_ITEMS), rng.integers(8, 14)
        for step in range(length):
            at = end - pd.Timedelta(days=length - step) + pd.Timedelta(hours=int(rng.integers(1, 20)))
            rows.append((f"k{u}", f"i{(first + step) % N_ITEMS}", "purchase", at, 1.0, 1))
    return pd.DataFrame(rows, columns=["user_key", "item_id", "event_type", "event_time", "price", "quantity"])


@pytest.fixture
def home(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("SHOPRANK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path / "home"))
    return tmp_path


def test_it_learns_the_walks_beats_popularity_serves_and_is_blessed(home):
    interactions = home / "interactions.parquet"
    walks().to_parquet(interactions, index=False)
    assert holdout_cutoff(walks()) == pd.Timestamp("2026-02-22", tz="UTC")
    evaluation = train_sequence(interactions, home / "model", home / "blessing", load_settings(), epochs=12)
    written = json.loads((home / "blessing").read_text())
    assert written["blessed"] is evaluation.blessed is True, evaluation.verdict.reasons
    assert evaluation.candidate["recall@20"] > 2 * evaluation.baselines["popularity"]["recall@20"]
    assert "item_cooccurrence" in evaluation.baselines  # measured beside it, for the record
    assert evaluation.production_outcome == "none"  # the first one: nothing to compare with
    assert evaluation.extra["infra_validation"]["warmup_requests"] > 0
    assert (home / "model" / "saved_model.pb").exists()
    card = json.loads((home / "model" / "assets.extra" / "model_card.json").read_text())
    assert card["model"] == SEQUENCE_MODEL_NAME and card["parameters"]["max_len"] == 50


def test_a_model_that_cannot_beat_popularity_is_not_blessed(home):
    interactions = home / "interactions.parquet"
    walks().to_parquet(interactions, index=False)
    demanding = replace(load_rules(SEQUENCE_RULES), min_gain_over_baseline=100.0)
    evaluation = train_sequence(interactions, home / "model", home / "blessing", load_settings(), epochs=1,
                                rules=demanding)
    assert evaluation.blessed is False
    assert any("popularity baseline" in reason and reason.startswith("FAIL") for reason in evaluation.verdict.reasons)
    assert "infra_validation" not in evaluation.extra


def test_a_week_without_new_purchases_is_a_clear_error(home):
    frame = walks(50)
    frame = frame[frame["event_time"] < holdout_cutoff(frame)]  # the last week is empty
    frame.to_parquet(home / "interactions.parquet", index=False)
    with pytest.raises(ValueError, match="nobody bought an item new to them"):
        train_sequence(home / "interactions.parquet", home / "model", home / "blessing", load_settings(), epochs=1)
