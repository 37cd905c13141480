"""The one judge of both rankers: candidate and production scored by the same function, production
that cannot be scored is an outcome with its reason, the evaluation fills the blessing artifact; the
search serving decision; a step without its input artifact fails naming it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from shoprank.evaluation.blessing import BlessingRules, load_rules
from shoprank.evaluation.judge import judge

RULES = BlessingRules(metric="ndcg@10", min_metric=0.01, min_auc=0.0, must_beat=("bm25_popularity", "own_frequency"))
BASELINES = {"bm25_popularity": {"ndcg@10": 0.54}, "own_frequency": {"ndcg@10": 0.58}, "bm25": {"ndcg@10": 0.25}}


def scorer(table: dict[str, float | Exception]):
    def score(model: str) -> dict[str, float]:
        value = table[model]
        if isinstance(value, Exception):
            raise value
        return {"ndcg@10": value}
    return score


def test_candidate_and_production_are_scored_alike_and_a_regression_fails():
    evaluation = judge("search_ranker", scorer({"cand": 0.60, "prod": 0.70}), "cand", BASELINES, RULES, ("prod", 3))
    assert evaluation.production == {"ndcg@10": 0.70} and evaluation.production_outcome == "scored"
    assert not evaluation.blessed
    assert any(r.startswith("FAIL ndcg@10 0.6000 >= production 0.7000") for r in evaluation.reasons)


def test_a_production_model_that_cannot_be_scored_is_an_outcome_with_its_reason():
    evaluation = judge("ranker", scorer({"cand": 0.60, "prod": KeyError("ctx_event_share")}), "cand", BASELINES,
                       RULES, ("prod", 4))
    assert evaluation.production is None and evaluation.production_version == 4
    assert evaluation.production_outcome == "not_scored"
    assert "production v4 cannot be scored on these rows (KeyError: 'ctx_event_share')" in evaluation.production_reason
    assert evaluation.reasons[-1].startswith("PASS production v4 cannot be scored")
    assert evaluation.as_dict()["production_outcome"] == "not_scored"


def test_an_unexpected_error_scoring_production_is_not_swallowed():
    with pytest.raises(RuntimeError, match="disk"):
        judge("ranker", scorer({"cand": 0.6, "prod": RuntimeError("disk gone")}), "cand", BASELINES, RULES, ("prod", 1))


def test_the_evaluation_logs_its_metrics_and_fills_the_blessing_artifact(tmp_path):
    logged = {}
    metrics = SimpleNamespace(log_metric=lambda k, v: logged.__setitem__(k, v))
    blessing = SimpleNamespace(path=str(tmp_path / "blessing" / "file"), metadata={})
    evaluation = judge("search_ranker", scorer({"cand": 0.61}), "cand", BASELINES, RULES, None)
    evaluation.extra["served_lists"] = {"candidate": {"ndcg@10": 0.3, "auc": float("nan")}}
    evaluation.extra["off_policy"] = {"candidate": {"purchases_per_list_logged": 0.2, "purchases_per_list_ips": 0.25,
                                                    "ips_minus_logged": 0.05, "lists": 40}}
    assert evaluation.record(metrics, blessing) == "blessed"
    assert logged == {"ndcg@10": 0.61, "bm25_popularity_ndcg@10": 0.54, "own_frequency_ndcg@10": 0.58,
                      "bm25_ndcg@10": 0.25, "served_ndcg@10": 0.3,  # NaN is no metric
                      "off_policy_purchases_per_list_logged": 0.2, "off_policy_purchases_per_list_ips": 0.25,
                      "off_policy_ips_minus_logged": 0.05}
    assert blessing.metadata["blessed"] is True and blessing.metadata["production_outcome"] == "none"
    saved = json.loads((tmp_path / "blessing" / "file").read_text())
    assert saved["blessed"] is True and saved["reasons"] == evaluation.reasons


def test_the_search_rules_require_beating_own_frequency():
    from shoprank.evaluation.blessing import SEARCH_RULES

    assert "own_frequency" in load_rules(SEARCH_RULES).must_beat
    evaluation = judge("search_ranker", scorer({"cand": 0.5486}), "cand", BASELINES, load_rules(SEARCH_RULES), None)
    assert not evaluation.blessed  # the demo's figures: beats BM25-then-popularity, loses to own-frequency
    assert any(r.startswith("FAIL ndcg@10 0.5486 >= own_frequency baseline 0.5800") for r in evaluation.reasons)


@pytest.mark.parametrize("table, production, expected", [
    ({"cand": 0.62}, None, ("ranker", "blessed")),
    ({"cand": 0.50, "prod": 0.60}, ("prod", 2), ("ranker", "production v2 still beats")),
    ({"cand": 0.50, "prod": 0.55}, ("prod", 2), ("own_frequency", "no search ranker beat own_frequency")),
    ({"cand": 0.50}, None, ("own_frequency", "no search ranker beat own_frequency")),
])
def test_what_known_shoppers_get_when_no_ranker_wins(table, production, expected):
    from shoprank.orchestration.steps import search_serving

    evaluation = judge("search_ranker", scorer(table), "cand", BASELINES, RULES, production)
    serving = search_serving(evaluation)
    assert serving.serve == expected[0] and expected[1] in serving.why


def test_lexical_is_served_when_it_is_the_best_rule():
    from shoprank.orchestration.steps import search_serving

    baselines = {"bm25_popularity": {"ndcg@10": 0.6}, "own_frequency": {"ndcg@10": 0.5}}
    serving = search_serving(judge("search_ranker", scorer({"cand": 0.4}), "cand", baselines, RULES, None))
    assert (serving.serve, serving.value) == ("lexical", 0.6)


def test_a_step_without_its_input_artifact_fails_naming_it(tmp_path, home):
    from shoprank.features.training_set import TrainingSetConfig
    from shoprank.orchestration.steps import MissingInput, training_set

    with pytest.raises(MissingInput, match=r"training_set: input `crossing` \(the receive step's crossing "
                                           r"manifest\) is missing: none was given"):
        training_set(None, tmp_path / "dataset", TrainingSetConfig())
    import json

    import pandas as pd

    (tmp_path / "crossing.json").write_text(json.dumps({"interval": ["2001-01-01", "2001-03-01"],
                                                        "snapshot_times": ["2001-03-01 00:00:00+00:00"]}))
    with pytest.raises(MissingInput, match=r"input `interactions` \(the receive step's pseudonymised "
                                           r"interactions\) is missing: none was given"):
        training_set(tmp_path / "crossing.json", tmp_path / "dataset", TrainingSetConfig())
    pd.DataFrame({"user_key": ["u"], "item_id": ["i"]}).to_parquet(tmp_path / "interactions.parquet")
    with pytest.raises(MissingInput, match=r"input `snapshots` .* nothing at .*/snapshots"):
        training_set(tmp_path / "crossing.json", tmp_path / "dataset", TrainingSetConfig(),
                     interactions_path=tmp_path / "interactions.parquet", snapshots_dir=tmp_path / "snapshots")
    assert not (tmp_path / "dataset").exists()
