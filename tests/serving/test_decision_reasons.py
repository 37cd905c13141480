"""Reasons a shopper can read: each template from what placed the item, with public arguments only."""

from __future__ import annotations

import pytest

from shoprank.serving.decision.reasons import reason_for
from shoprank.serving.decision.stage import Placed

CATEGORY = {"milk": "dairy", "bread": "bakery", "jam": "spreads", "tea": "drinks"}
NEIGHBOURS = {"bread": ["jam", "milk"], "tea": ["milk"]}


def _placed(item: str, source: str | None = None, rule: str | None = None) -> Placed:
    return Placed(item, 1.0, 1, 1, rule, source)


@pytest.mark.parametrize(("placed", "template", "args"), [
    (_placed("jam", "cooc"), "bought_with", {"item_id": "bread"}),
    (_placed("milk", "session_cooc"), "bought_with", {"item_id": "tea"}),  # the session's item comes first
    (_placed("jam", "knn"), "similar_shoppers", {}),
    (_placed("bread", "own"), "buy_again", {}),
    (_placed("tea", "session"), "viewed_recently", {}),
    (_placed("milk", "popular"), "popular_in", {"category": "dairy"}),
    (_placed("tea", "cooc", "pin:double-11"), "campaign", {"campaign": "double-11"}),
    (_placed("jam", "popular", "boost:spreads-week"), "campaign", {"campaign": "spreads-week"}),
    (_placed("jam", "new_in", "new_item"), "new_in", {"category": "spreads"}),
    (_placed("jam", "similar_item", "substitute:bread"), "instead_of", {"item_id": "bread"}),
    (_placed("unknown", "popular"), "popular_in", {}),
])
def test_each_template_from_what_placed_the_item(placed, template, args):
    reason = reason_for(placed, CATEGORY, history=["bread", "tea"], session=["tea"], neighbours=NEIGHBOURS)
    assert reason.as_json() == {"template": template, "args": args}


def test_a_cooc_item_with_no_anchor_in_the_history_falls_back_without_inventing_one():
    reason = reason_for(_placed("jam", "cooc"), CATEGORY, history=["tea"], neighbours=NEIGHBOURS)
    assert reason.template == "similar_shoppers" and reason.args == {}


def test_no_reason_leaks_an_internal_name():
    internal = {"own", "cooc", "knn", "session_cooc", "ranker", "score", "suppressed", "diversity"}
    for source in ("own", "cooc", "knn", "session", "session_cooc", "popular", None):
        for rule in (None, "suppressed", "diversity", "boost:b", "pin:p", "new_item", "substitute:x"):
            reason = reason_for(_placed("jam", source, rule), CATEGORY, ["bread"], ["tea"], NEIGHBOURS)
            assert reason.template not in internal and not internal & set(reason.args.values())
