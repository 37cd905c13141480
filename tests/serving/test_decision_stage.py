"""The decision stage's rules, each on its own and on hostile input: what a merchandiser sets is what
the shopper gets, and a bad rule set is refused whole with the rule and field named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoprank.serving.decision.rules import RulesError, RuleSet, parse_rules
from shoprank.serving.decision.stage import Catalogue, Ranked, decide

NOW = datetime(2026, 11, 11, 12, tzinfo=UTC)
CATEGORY = {"a": "snacks", "b": "snacks", "c": "snacks", "d": "drinks", "e": "drinks", "f": "tea", "g": "tea",
            "n1": "tea", "n2": "drinks"}
PRICE = {"a": 10.0, "b": 20.0, "c": 900.0, "d": 5.0, "e": 6.0, "f": 7.0, "g": 8.0, "n1": 9.0, "n2": 9.5}
RANKED = [Ranked(item, score, "cooc") for item, score in
          (("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6), ("e", 0.5), ("f", 0.4), ("g", 0.3))]


def _items(placed) -> list[str]:
    return [p.item_id for p in placed]


def _rules(text: str) -> RuleSet:
    return parse_rules('version = "t"\n' + text, "test.toml")


def test_no_rules_keep_the_rankers_order_and_record_positions():
    placed = decide(RANKED, 5, RuleSet(), Catalogue(CATEGORY, PRICE), NOW)
    assert _items(placed) == ["a", "b", "c", "d", "e"]
    assert [(p.ranker_position, p.position, p.rule) for p in placed][:2] == [(1, 1, None), (2, 2, None)]


def test_an_out_of_stock_item_is_never_served_even_at_the_top():
    placed = decide(RANKED, 5, RuleSet(), Catalogue(CATEGORY, PRICE, out_of_stock={"a"}), NOW)
    assert "a" not in _items(placed) and _items(placed) == ["b", "c", "d", "e", "f"]
    assert placed[0].ranker_position == 2 and placed[0].position == 1  # displayed where it was seen


def test_substitution_gives_the_place_to_the_nearest_similar_item_in_stock():
    rules = _rules("substitute_out_of_stock = true")
    similar = {"a": ["b", "x", "y"]}.get  # b is in the list already, x is out of stock too: y
    placed = decide(RANKED, 3, rules, Catalogue(CATEGORY, PRICE, out_of_stock={"a", "x"}), NOW,
                    similar=lambda item: similar(item, []))
    assert _items(placed) == ["y", "b", "c"]
    assert placed[0].rule == "substitute:a" and placed[0].ranker_position is None


def test_filters_drop_items_categories_and_prices_outside_the_band():
    rules = _rules('[filters]\nexclude_items = ["b"]\nexclude_categories = ["tea"]\nprice = [0, 100]')
    assert _items(decide(RANKED, 7, rules, Catalogue(CATEGORY, PRICE), NOW)) == ["a", "d", "e"]


def test_a_pin_lands_at_its_position_only_inside_its_window():
    rules = _rules('[[pin]]\nname = "hero"\nitem = "g"\nposition = 2\n'
                   'start = 2026-11-11T00:00:00Z\nend = 2026-11-12T00:00:00Z')
    inside = decide(RANKED, 4, rules, Catalogue(CATEGORY, PRICE), NOW)
    assert _items(inside) == ["a", "g", "b", "c"] and inside[1].rule == "pin:hero"
    after = decide(RANKED, 4, rules, Catalogue(CATEGORY, PRICE), datetime(2026, 11, 12, tzinfo=UTC))
    assert _items(after) == ["a", "b", "c", "d"]


def test_a_pinned_item_out_of_stock_is_not_served():
    rules = _rules('[[pin]]\nname = "hero"\nitem = "g"\nposition = 1')
    assert "g" not in _items(decide(RANKED, 4, rules, Catalogue(CATEGORY, PRICE, out_of_stock={"g"}), NOW))


def test_a_boost_reorders_by_the_boosted_score_inside_its_window():
    rules = _rules('[[boost]]\nname = "tea-week"\ncategories = ["tea"]\nfactor = 3.0\n'
                   'start = 2026-11-10T00:00:00Z\nend = 2026-11-17T00:00:00Z')
    placed = decide(RANKED, 3, rules, Catalogue(CATEGORY, PRICE), NOW)
    assert _items(placed) == ["f", "a", "g"] and placed[0].rule == "boost:tea-week"  # 1.2, 0.9, 0.9 (stable)


def test_diversity_holds_a_category_to_its_share_of_the_top():
    rules = _rules("[diversity]\nper_category = 2\ntop_k = 4")
    placed = decide(RANKED, 5, rules, Catalogue(CATEGORY, PRICE), NOW)
    assert _items(placed) == ["a", "b", "d", "e", "c"] and placed[4].rule == "diversity"


def test_items_shown_often_without_a_click_drop_below_the_rest():
    rules = _rules("[suppression]\nimpressions = 3\ndays = 7")
    placed = decide(RANKED, 7, rules, Catalogue(CATEGORY, PRICE), NOW, impressions={"a": (5, 0), "b": (5, 1)})
    assert _items(placed)[-1] == "a" and _items(placed)[0] == "b" and placed[-1].rule == "suppressed"


def test_new_items_fill_their_slots_and_never_push_out_more():
    rules = _rules("new_item_slots = 1")
    placed = decide(RANKED, 4, rules, Catalogue(CATEGORY, PRICE), NOW, new_items=["n1", "n2"])
    assert _items(placed) == ["a", "b", "c", "n1"] and placed[-1].rule == "new_item"


@pytest.mark.parametrize(("text", "named"), [
    ('[[pin]]\nname = "hero"\nitem = "g"\nposition = 0', "rule 'hero', field 'position': expected an integer >= 1"),
    ('[[boost]]\nname = "b"\nitems = ["a"]\nfactor = -1', "rule 'b', field 'factor': expected a positive number"),
    ('[[boost]]\nname = "b"\nfactor = 2', "rule 'b', field 'items': expected items or categories"),
    ('[filters]\nprice = [10, 1]', "rule 'filters', field 'price'"),
    ('[diversity]\nper_category = 2', "rule 'diversity', field 'top_k'"),
    ('[[pin]]\nname = "p"\nitem = "a"\nposition = 1\nstart = 2026-11-12T00:00:00Z\nend = 2026-11-11T00:00:00Z',
     "rule 'p', field 'end': expected a time after start"),
    ('[[pin]]\nname = "p"\nitem = "a"\nposition = 1\nstart = 2026-11-12T00:00:00', "field 'start'"),
    ('[[pin]]\nname = "p"\nitem = "a"\nposition = 1\ncolour = "red"', "rule 'p': unknown field 'colour'"),
    ('[[pin]]\nname = "p"\nitem = "a"\nposition = 1\n[[pin]]\nname = "p"\nitem = "b"\nposition = 2',
     "rule 'p': two pin rules have this name"),
    ("pin = 3", "'pin': expected an array of tables"),
    ("new_item_slots = true", "field 'new_item_slots'"),
    ("[filters\n", "not valid TOML"),
])
def test_a_malformed_rule_set_is_refused_with_the_file_rule_and_field_named(text, named):
    with pytest.raises(RulesError) as err:
        _rules(text)
    assert str(err.value).startswith("test.toml: ") and named in str(err.value)


def test_a_rule_set_needs_its_version():
    with pytest.raises(RulesError, match="field 'version'"):
        parse_rules("new_item_slots = 1", "rules.toml")


def test_what_the_shopper_bought_is_left_out_only_where_its_category_rarely_repeats():
    rules = _rules("[suppression]\nimpressions = 50\ndays = 7\nbought_repeat_below = 0.2")
    repeat = {"snacks": 0.05, "drinks": 0.6}  # a snack bought once stays bought; drinks are bought again
    placed = decide(RANKED, 4, rules, Catalogue(CATEGORY, PRICE), NOW, bought={"a", "d", "f"}, repeat_rate=repeat)
    assert _items(placed) == ["b", "c", "d", "e"]  # a left out; d (drinks) and f (no rate learned) kept
    assert _items(decide(RANKED, 4, _rules("[suppression]\nimpressions = 50\ndays = 7"), Catalogue(CATEGORY, PRICE),
                         NOW, bought={"a"}, repeat_rate=repeat))[0] == "a"  # off unless the rule set asks
    with pytest.raises(RulesError, match="bought_repeat_below"):
        _rules("[suppression]\nimpressions = 5\ndays = 7\nbought_repeat_below = 1.5")


def test_category_repeat_rates_are_learned_from_the_item_table_weighted_by_buyers():
    import numpy as np

    from shoprank.features.online import ItemTable, OnlineVersion
    from shoprank.serving.decision.live_catalogue import category_repeat_rates

    numeric = np.array([[0.0, 10.0], [0.5, 30.0], [0.9, 0.0], [np.nan, np.nan]])  # last row: unknown items
    table = ItemTable(OnlineVersion(None, None), {"x": 0, "y": 1, "z": 2}, ("item_repeat_rate", "item_buyers_30d"),
                      numeric, {"item_category": np.array(["milk", "milk", "tv", None], dtype=object)})
    assert category_repeat_rates(table) == {"milk": 0.375}  # (0*10 + 0.5*30) / 40; tv has no buyers: unknown
    assert category_repeat_rates(object()) == {}
