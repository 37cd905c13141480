import pytest

from shoprank.evaluation.blessing import BlessingRules, bless, load_rules

RULES = BlessingRules(metric="recall@20", min_metric=0.05, min_auc=0.6, min_gain_over_baseline=0.1,
                      max_regression_vs_production=0.02)


def test_first_model_judged_on_floors_and_baseline():
    verdict = bless({"recall@20": 0.2, "auc": 0.7}, {"recall@20": 0.15}, None, RULES)
    assert verdict.blessed
    assert verdict.reasons[-1] == "PASS no production model yet: judged on floors and baseline alone"


def test_must_beat_baseline_by_the_margin():
    verdict = bless({"recall@20": 0.16, "auc": 0.7}, {"recall@20": 0.15}, None, RULES)
    assert not verdict.blessed
    assert "FAIL recall@20 0.1600 >= popularity baseline 0.1500 x (1 + 0.10) = 0.1650" in verdict.reasons


def test_must_not_regress_against_production():
    verdict = bless({"recall@20": 0.2, "auc": 0.7}, {"recall@20": 0.1}, {"recall@20": 0.25}, RULES)
    assert not verdict.blessed
    assert any(r.startswith("FAIL recall@20 0.2000 >= production 0.2500") for r in verdict.reasons)


def test_floors_apply():
    verdict = bless({"recall@20": 0.04, "auc": 0.5}, {"recall@20": 0.0}, None, RULES)
    assert not verdict.blessed and sum(r.startswith("FAIL") for r in verdict.reasons) == 2


def test_rules_come_from_configuration(tmp_path, monkeypatch):
    assert load_rules().metric == "recall@20"
    custom = tmp_path / "rules.toml"
    custom.write_text('metric = "ndcg@10"\nmin_metric = 0.0\n')
    monkeypatch.setenv("SHOPRANK_BLESSING_RULES", str(custom))
    assert load_rules() == BlessingRules(metric="ndcg@10", min_metric=0.0)
    custom.write_text("min_metrik = 1\n")
    with pytest.raises(ValueError, match="unknown blessing rule.*min_metrik"):
        load_rules()
