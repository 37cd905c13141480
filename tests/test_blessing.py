import pytest

from shoprank.evaluation.blessing import BlessingRules, bless, load_rules

RULES = BlessingRules(metric="recall@20", min_metric=0.05, min_auc=0.6, min_gain_over_baseline=0.1,
                      max_regression_vs_production=0.02, must_beat=("popularity", "personal_then_popular"))


def baselines(popularity: float, personal: float = 0.0) -> dict[str, dict[str, float]]:
    return {"popularity": {"recall@20": popularity}, "personal_then_popular": {"recall@20": personal}}


def test_first_model_judged_on_floors_and_baseline():
    verdict = bless({"recall@20": 0.2, "auc": 0.7}, baselines(0.15, 0.1), None, RULES)
    assert verdict.blessed
    assert verdict.reasons[-1] == "PASS no production model yet: judged on floors and baseline alone"


def test_must_beat_baseline_by_the_margin():
    verdict = bless({"recall@20": 0.16, "auc": 0.7}, baselines(0.15), None, RULES)
    assert not verdict.blessed
    assert "FAIL recall@20 0.1600 >= popularity baseline 0.1500 x (1 + 0.10) = 0.1650" in verdict.reasons


def test_every_named_baseline_must_be_beaten():
    verdict = bless({"recall@20": 0.2, "auc": 0.7}, baselines(0.1, 0.19), None, RULES)
    assert not verdict.blessed
    assert "PASS recall@20 0.2000 >= popularity baseline 0.1000 x (1 + 0.10) = 0.1100" in verdict.reasons
    assert "FAIL recall@20 0.2000 >= personal_then_popular baseline 0.1900 x (1 + 0.10) = 0.2090" in verdict.reasons


def test_a_rule_naming_an_uncomputed_baseline_is_an_error():
    with pytest.raises(KeyError, match="personal_then_popular"):
        bless({"recall@20": 0.2, "auc": 0.7}, {"popularity": {"recall@20": 0.1}}, None, RULES)


def test_must_not_regress_against_production():
    verdict = bless({"recall@20": 0.2, "auc": 0.7}, baselines(0.1), {"recall@20": 0.25}, RULES)
    assert not verdict.blessed
    assert any(r.startswith("FAIL recall@20 0.2000 >= production 0.2500") for r in verdict.reasons)


def test_floors_apply():
    verdict = bless({"recall@20": 0.04, "auc": 0.5}, baselines(0.0), None, RULES)
    assert not verdict.blessed and sum(r.startswith("FAIL") for r in verdict.reasons) == 2


def test_rules_come_from_configuration(tmp_path, monkeypatch):
    assert load_rules().metric == "recall@20"
    custom = tmp_path / "rules.toml"
    custom.write_text('metric = "ndcg@10"\nmin_metric = 0.0\nmust_beat = ["item_cooccurrence"]\n')
    monkeypatch.setenv("SHOPRANK_BLESSING_RULES", str(custom))
    assert load_rules() == BlessingRules(metric="ndcg@10", min_metric=0.0, must_beat=("item_cooccurrence",))
    custom.write_text("min_metrik = 1\n")
    with pytest.raises(ValueError, match="unknown blessing rule.*min_metrik"):
        load_rules()


def test_a_list_only_evaluation_has_no_auc_check_unless_the_rules_want_one():
    from shoprank.evaluation.blessing import SEARCH_RULES

    search = load_rules(SEARCH_RULES)
    candidate = {"ndcg@10": 0.5}
    baselines = {"bm25_popularity": {"ndcg@10": 0.4}, "own_frequency": {"ndcg@10": 0.45}}
    verdict = bless(candidate, baselines, None, search)
    assert verdict.blessed and not any("auc" in reason for reason in verdict.reasons)
    strict = BlessingRules(metric="ndcg@10", min_metric=0.0, min_auc=0.6, must_beat=("bm25_popularity",))
    verdict = bless(candidate, baselines, None, strict)
    assert not verdict.blessed and any(r.startswith("FAIL auc not measured") for r in verdict.reasons)
