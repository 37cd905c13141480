"""Online experiments: assignment, configuration, interleaving, the join of served lists and events,
the always-valid test and the decision's order of checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shoprank.evaluation.experiments import stats
from shoprank.evaluation.experiments.config import (
    ExperimentError,
    assign,
    canary_experiment,
    closed,
    parse_document,
    parse_experiment,
    read_experiments,
    write_experiment,
)
from shoprank.evaluation.experiments.decision import decide
from shoprank.evaluation.experiments.interleaving import credit, team_draft
from shoprank.evaluation.experiments.outcomes import arm_outcomes, interleaving_credits

START = pd.Timestamp("2026-12-01T00:00:00Z")


def _experiment(**more):
    return parse_experiment({"name": "exp", "route": "recommend", "salt": "s1", "started_at": START.isoformat(),
                             "arms": [{"name": "control", "label": "stable", "share": 0.9},
                                      {"name": "canary", "label": "canary", "share": 0.1}], **more})


def test_assignment_is_deterministic_and_within_one_percent_of_the_shares_over_100k_shoppers():
    experiment = _experiment()
    units = [f"p{n:06d}" for n in range(100_000)]
    arms = [assign(experiment, u).name for u in units]
    assert arms == [assign(experiment, u).name for u in units]
    share = arms.count("canary") / len(arms)
    assert abs(share - 0.1) < 0.01
    halves = parse_experiment({"name": "halves", "route": "search", "salt": "s2", "arms": [
        {"name": "a", "label": "stable", "share": 0.5}, {"name": "b", "label": "canary", "share": 0.5}]})
    split = [assign(halves, u).name for u in units]
    assert abs(split.count("a") / len(split) - 0.5) < 0.01


def test_two_experiments_split_shoppers_independently_and_nobody_is_assigned_without_an_id():
    first = _experiment()
    second = parse_experiment({**first.as_dict(), "name": "other", "salt": "s9", "route": "search",
                                 "model": "search_ranker"})
    units = [f"p{n}" for n in range(40_000)]
    a = np.array([assign(first, u).name == "canary" for u in units])
    b = np.array([assign(second, u).name == "canary" for u in units])
    assert abs(b[a].mean() - 0.1) < 0.02  # the canary shoppers of one are a tenth of the other's canary
    assert assign(first, None) is None and assign(first, "") is None


@pytest.mark.parametrize(("change", "message"), [
    ({"route": "similar"}, "route 'similar'"),
    ({"arms": [{"name": "control", "label": "stable", "share": 0.5}]}, "at least two arms"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5}, {"name": "b", "label": "canary", "share": 0.4}]},
     "add up to 0.9"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5}, {"name": "a", "label": "canary", "share": 0.5}]},
     "repeat"),
    ({"arms": [{"name": "a", "label": "stable", "version": 3, "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5}]}, "exactly one of label, version or interleave"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "interleave": ["stable", "stable"], "share": 0.5}]}, "two different labels"),
    ({"control": "nobody"}, "control 'nobody' is not an arm"),
    ({"guardrails": {"p99": 3}}, "unknown guardrail"),
    ({"colour": "red"}, "unknown field"),
    ({"model": "search_ranker"}, "model 'search_ranker' does not serve /recommend"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5, "candidates": {"lexical_n": 50}}]},
     "'lexical_n' is not a /recommend candidate setting"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5, "candidates": {"n_popular": -1}}]},
     r"candidates.n_popular = -1: expected a whole number from 0"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5, "candidates": {"n_cooc": True}}]},
     "candidates.n_cooc = True"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5, "rules": 7}]}, "rules: expected the rule set's TOML"),
    ({"arms": [{"name": "a", "label": "stable", "share": 0.5},
               {"name": "b", "label": "canary", "share": 0.5, "rule_set": "x"}]}, r"unknown field\(s\) \['rule_set'\]"),
])
def test_a_bad_experiment_is_refused_naming_the_field(change, message):
    base = {"name": "exp", "route": "recommend", "arms": [{"name": "control", "label": "stable", "share": 0.9},
                                                          {"name": "canary", "label": "canary", "share": 0.1}]}
    with pytest.raises(ExperimentError, match=message):
        parse_experiment({**base, **change})


def test_an_arm_carries_its_own_rules_and_candidate_settings_through_the_document(tmp_path):
    from shoprank.storage import LocalStore

    experiment = parse_experiment({
        "name": "wider", "route": "search", "arms": [
            {"name": "control", "label": "stable", "share": 0.5},
            {"name": "wide", "label": "stable", "share": 0.5, "candidates": {"lexical_n": 400},
             "rules": 'version = "v1"\n[filters]\nexclude_categories = ["c1"]\n'}]})
    assert experiment.model == "search_ranker"
    assert experiment.arm("wide").serves == "label stable lexical_n=400 own rules"
    store = LocalStore(tmp_path)
    write_experiment(store, experiment)
    assert read_experiments(store) == [experiment]
    assert "rules" not in experiment.as_dict()["arms"][0]  # an arm says only what it sets


def test_the_document_refuses_two_running_experiments_on_one_route_and_writes_nothing(tmp_path):
    from shoprank.storage import LocalStore

    store = LocalStore(tmp_path)
    first = canary_experiment("ranker", START.to_pydatetime())
    write_experiment(store, first)
    second = canary_experiment("ranker", (START + pd.Timedelta(hours=1)).to_pydatetime())
    with pytest.raises(ExperimentError, match="more than one running experiment on /recommend"):
        write_experiment(store, second)
    assert [e.name for e in read_experiments(store)] == [first.name]
    write_experiment(store, closed(first, "stopped", "no difference", START.to_pydatetime()))
    write_experiment(store, second)  # the first one ended: the route is free
    assert {e.name: e.status for e in read_experiments(store)} == {first.name: "stopped", second.name: "running"}
    with pytest.raises(ExperimentError, match="not JSON"):
        parse_document(b"{")


def test_team_draft_takes_each_item_once_and_balances_the_teams():
    rng = np.random.default_rng(0)
    a, b = list("abcdefghij"), list("jihgfedcba")
    for _ in range(200):
        items, teams = team_draft(a, b, 10, rng)
        assert sorted(items) == sorted(a) and len(set(items)) == 10
        assert abs(teams.count("a") - teams.count("b")) <= 1
    # one ranking runs out: the other fills the list
    items, teams = team_draft(["x"], ["y", "z", "w"], 4, rng)
    assert sorted(items) == ["w", "x", "y", "z"] and teams.count("a") == 1
    assert credit(["a", "b", None, "b"], [1, 2, 3, 4, 9]) == (1, 2)


def test_team_draft_is_fair_to_identical_rankers():
    rng = np.random.default_rng(1)
    first_team_first = [team_draft(list("abc"), list("abc"), 3, rng)[1][0] == "a" for _ in range(4000)]
    assert abs(np.mean(first_team_first) - 0.5) < 0.03


def _lists(rows):
    return pd.DataFrame(rows, columns=["request_id", "user_id", "arm", "served_at", "items", "teams", "latency_ms",
                                       "fallback", "experiment"])


def _events(rows):
    frame = pd.DataFrame(rows, columns=["event_type", "user_id", "item_id", "event_time", "request_id", "position",
                                        "price", "quantity"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def test_clicks_join_their_answer_and_purchases_the_arm_of_a_recent_exposure():
    t0 = START
    lists = _lists([
        ("r1", "u1", "control", t0, ["i1", "i2"], None, 10.0, None, "exp"),
        ("r2", "u2", "canary", t0, ["i3", "i4"], None, 12.0, None, "exp"),
        ("r3", "u2", "canary", t0 + pd.Timedelta(hours=1), [], None, 50.0, "model_server_error", "exp"),
    ])
    events = _events([
        ("impression", "u1", "i1", t0, "r1", 1, None, None), ("impression", "u1", "i2", t0, "r1", 2, None, None),
        ("click", "u1", "i2", t0, "r1", 2, None, None),
        ("impression", "u2", "i3", t0, "r2", 1, None, None),
        ("purchase", "u2", "i9", t0 + pd.Timedelta(hours=3), None, None, 5.0, 2),  # within 24 h of r3
        ("purchase", "u1", "i1", t0 + pd.Timedelta(hours=30), None, None, 7.0, 1),  # too late
        ("purchase", "u1", "i1", t0 - pd.Timedelta(hours=1), None, None, 7.0, 1),  # before any exposure
        ("purchase", "u3", "i1", t0, None, None, 7.0, 1),  # never exposed
    ])
    out = arm_outcomes(lists, events, ["control", "canary"], attribution_hours=24)
    control, canary = out["control"].totals(), out["canary"].totals()
    assert (control["requests"], control["impressions"], control["clicks"], control["purchases"]) == (1, 2, 1, 0)
    assert (canary["requests"], canary["units"], canary["purchases"], canary["revenue"]) == (2, 1, 1, 10.0)
    assert canary["empty_rate"] == 0.5 and canary["fallback_rate"] == 0.5 and control["no_click_share"] == 0.0


def test_interleaved_credits_go_to_the_team_that_placed_the_item():
    t0 = START
    lists = _lists([("r1", "u1", "mix", t0, ["i1", "i2", "i3"], ["a", "b", None], 9.0, None, "exp")])
    events = _events([("click", "u1", "i2", t0, "r1", 2, None, None), ("click", "u1", "i3", t0, "r1", 3, None, None),
                      ("purchase", "u1", "i1", t0 + pd.Timedelta(hours=1), None, None, 3.0, 1),
                      ("purchase", "u1", "i3", t0 + pd.Timedelta(hours=1), None, None, 3.0, 1)])
    credits = interleaving_credits(lists, events, attribution_hours=24)
    assert credits.loc["u1"].to_dict() == {"clicks_a": 0.0, "clicks_b": 1.0, "purchases_a": 1.0, "purchases_b": 0.0,
                                           "click_wins_a": 0.0, "click_wins_b": 1.0, "purchase_wins_a": 1.0,
                                           "purchase_wins_b": 0.0}


def test_a_heavy_buyer_wins_a_list_once_however_much_they_buy():
    t0 = START
    lists = _lists([("r1", "u1", "mix", t0, ["i1", "i2", "i3"], ["a", "b", "b"], 9.0, None, "exp"),
                    ("r2", "u1", "mix", t0 + pd.Timedelta(hours=2), ["i4", "i5"], ["a", "b"], 9.0, None, "exp")])
    events = _events([("purchase", "u1", item, t0 + pd.Timedelta(minutes=30 + n), None, None, 1.0, 1)
                      for n, item in enumerate(["i2", "i3"])]
                     + [("purchase", "u1", "i4", t0 + pd.Timedelta(hours=3), None, None, 1.0, 1)])
    credits = interleaving_credits(lists, events, attribution_hours=24).loc["u1"]
    assert (credits["purchases_a"], credits["purchases_b"]) == (1.0, 2.0)
    assert (credits["purchase_wins_a"], credits["purchase_wins_b"]) == (1.0, 1.0)


def test_the_always_valid_p_value_holds_its_level_at_every_look_where_a_fixed_test_does_not():
    """A/A: 300 experiments looked at 50 times each. The mSPRT's false rejections stay under alpha;
    a fixed-n z-test at every look rejects far more often (why the sequential test is needed)."""
    rng = np.random.default_rng(7)
    sequential = naive = 0
    for _ in range(300):
        a, b = rng.poisson(1.0, 5000).astype(float), rng.poisson(1.0, 5000).astype(float)
        p, rejected_seq, rejected_naive = 1.0, False, False
        for n in range(100, 5001, 100):
            mean_a, var_a = stats.mean_estimate(a[:n])
            mean_b, var_b = stats.mean_estimate(b[:n])
            look = stats.sequential_look(mean_b - mean_a, var_a + var_b, mean_a, 0.05, 0.05, p)
            p = look.p_value
            rejected_seq |= p < 0.05
            rejected_naive |= abs(mean_b - mean_a) / math.sqrt(var_a + var_b) > 1.96
        sequential += rejected_seq
        naive += rejected_naive
    assert sequential / 300 <= 0.05 < naive / 300


def test_the_sequential_test_finds_a_real_difference_and_its_interval_holds_it():
    rng = np.random.default_rng(3)
    a, b = rng.poisson(1.0, 40_000).astype(float), rng.poisson(1.1, 40_000).astype(float)
    mean_a, var_a = stats.mean_estimate(a)
    mean_b, var_b = stats.mean_estimate(b)
    look = stats.sequential_look(mean_b - mean_a, var_a + var_b, mean_a, 0.05, 0.05)
    assert look.p_value < 0.001 and look.interval[0] < 0.1 < look.interval[1] and look.interval[0] > 0


def test_the_ratio_variance_matches_the_spread_of_the_ratio_over_resamples():
    rng = np.random.default_rng(5)
    estimates, variances = [], []
    for _ in range(400):
        requests = rng.geometric(0.3, 2000).astype(float)
        purchases = rng.binomial(requests.astype(int), 0.1).astype(float)
        r = stats.ratio(purchases, requests)
        estimates.append(r.value)
        variances.append(r.variance)
    assert np.var(estimates) == pytest.approx(np.mean(variances), rel=0.2)


def test_the_sample_ratio_check_flags_a_broken_split_only():
    assert stats.sample_ratio_p([9000, 1000], [0.9, 0.1]) > 0.01
    assert stats.sample_ratio_p([9000, 800], [0.9, 0.1]) < 0.001


def _arm_rows(arm, users, requests_each, latency, fallback=None, buys=0):
    rows, events = [], []
    for u in users:
        for n in range(requests_each):
            rid = f"{arm}-{u}-{n}"
            rows.append((rid, u, arm, START + pd.Timedelta(minutes=n), ["i1", "i2"], None, latency, fallback, "exp"))
            events.append(("impression", u, "i1", START, rid, 1, None, None))
        for n in range(buys):
            events.append(("purchase", u, "i1", START + pd.Timedelta(hours=1, minutes=n), None, None, 2.0, 1))
    return rows, events


def test_a_guardrail_breach_rolls_back_at_the_first_look_whatever_the_kpi():
    experiment = _experiment()
    users = [f"p{n}" for n in range(3000)]
    arms = {u: assign(experiment, u).name for u in users}
    control_rows, control_events = _arm_rows("control", [u for u in users if arms[u] == "control"], 1, 20.0)
    slow_rows, slow_events = _arm_rows("canary", [u for u in users if arms[u] == "canary"], 1, 900.0, buys=3)
    verdict = decide(experiment, _lists(control_rows + slow_rows), _events(control_events + slow_events),
                     START + pd.Timedelta(hours=1))
    assert verdict.action == "rollback" and "p99_latency_ms 900 > 250" in verdict.reason


def test_a_broken_split_decides_nothing():
    experiment = _experiment()
    users = [f"p{n}" for n in range(3000)]
    rows, events = _arm_rows("control", users[:2000], 1, 20.0)  # everyone logged as control: broken
    more, more_events = _arm_rows("canary", users[2000:2050], 1, 20.0, buys=5)
    verdict = decide(experiment, _lists(rows + more), _events(events + more_events), START + pd.Timedelta(hours=1))
    assert verdict.action == "broken" and "sample ratio mismatch" in verdict.reason


def test_no_verdict_before_the_end_then_no_difference_at_the_maximum_duration():
    experiment = _experiment(max_hours=24)
    users = [f"p{n}" for n in range(2000)]
    arms = {u: assign(experiment, u).name for u in users}
    rows, events = [], []
    for arm in ("control", "canary"):
        r, e = _arm_rows(arm, [u for u in users if arms[u] == arm], 2, 20.0, buys=1)
        rows += r
        events += e
    lists, frame = _lists(rows), _events(events)
    early = decide(experiment, lists, frame, START + pd.Timedelta(hours=3))
    late = decide(experiment, lists, frame, START + pd.Timedelta(hours=25))
    assert early.action == "continue" and late.action == "stop" and "no difference" in late.reason
