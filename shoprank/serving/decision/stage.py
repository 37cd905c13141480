"""The decision stage: what the ranker ordered, turned into what the shopper is shown.

It runs after ranking on every path (known shoppers, cold start, anonymous, search) and is a pure
function of the ranked list, the rule set, the catalogue's current state and the shopper's recent
impressions, so the API, the `rules preview` command and the tests run the same code. Every placed
item keeps its ranker position, its displayed position and the rule that placed it: position bias
is about where the shopper saw an item, and a pinned or boosted item's clicks must not teach the
ranker that the item is relevant.

The order of the rules, and why:
1. availability: an out-of-stock item is never served; with substitution its place goes to its
   nearest similar in-stock item that the answer does not show anyway;
2. filters: excluded items and categories, the price band;
3. suppression: items shown `impressions` times in `days` without a click drop below the rest, and
   items the shopper bought are left out where their category's repeat rate (learned nightly) is
   below `bought_repeat_below` (a second fridge is rarely wanted; a second carton of milk is);
4. boosts: an active campaign multiplies its items' scores, and the list is re-sorted (stable);
5. diversity: at most `per_category` of a category in the first `top_k`; the others move after;
6. new items: up to `new_item_slots` of today's items that fit the shopper, at the last slots of
   the answer (they have no score to compete with);
7. pins: an active pin puts its item at its position (if the item may be served at all).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shoprank.serving.decision.rules import RuleSet

__all__ = ["Catalogue", "Placed", "Ranked", "decide"]


@dataclass(frozen=True)
class Ranked:
    """One item as the ranker (or the cold-start order) left it."""

    item_id: str
    score: float
    reason: str | None = None  # the candidate source, turned into a shopper's reason by the API


@dataclass(frozen=True)
class Placed:
    item_id: str
    score: float
    ranker_position: int | None  # 1-based; None for an item a rule brought in
    position: int  # 1-based, as displayed
    rule: str | None  # what placed it here: None (the ranker), "pin:<name>", "boost:<name>", ...
    reason: str | None = None


class Catalogue:
    """What the stage needs to know of an item: its category, price and stock. Unknown items are
    treated as in stock with no category or price (the catalogue feed may lag the features)."""

    def __init__(self, category: Mapping[str, str | None], price: Mapping[str, float | None],
                 out_of_stock: set[str] | frozenset[str] = frozenset()) -> None:
        self.category, self.price, self.out_of_stock = category, price, out_of_stock

    def available(self, item: str) -> bool:
        return item not in self.out_of_stock


def _allowed(item: str, rules: RuleSet, catalogue: Catalogue) -> bool:
    f = rules.filters
    if not catalogue.available(item) or item in f.exclude_items:
        return False
    if catalogue.category.get(item) in f.exclude_categories:
        return False
    price = catalogue.price.get(item)
    if price is not None and ((f.min_price is not None and price < f.min_price)
                              or (f.max_price is not None and price > f.max_price)):
        return False
    return True


def decide(ranked: Sequence[Ranked], k: int, rules: RuleSet, catalogue: Catalogue, now: datetime,
           impressions: Mapping[str, tuple[int, int]] | None = None,
           similar: Callable[[str], Sequence[str]] | None = None,
           new_items: Sequence[str] = (), bought: Collection[str] = (),
           repeat_rate: Mapping[str, float] | None = None) -> list[Placed]:
    """The `k` items to show, in order. `impressions`: item -> (times shown, times clicked) in the
    suppression window; `similar`: an item's similar items, nearest first (for substitution);
    `new_items`: today's items that fit this shopper, best first; `bought`: the shopper's bought items;
    `repeat_rate`: each category's repeat-purchase rate (a category it lacks is taken to repeat)."""
    rows: list[Placed] = []
    # a substitute is never an item the answer shows anyway (one of the first k the rules allow)
    listed: set[str] | None = None  # worked out on the first substitution only: most answers have none
    seen: set[str] = set()
    for position, entry in enumerate(ranked, start=1):
        if entry.item_id in seen:
            continue
        seen.add(entry.item_id)
        if _allowed(entry.item_id, rules, catalogue):
            rows.append(Placed(entry.item_id, entry.score, position, position, None, entry.reason))
        elif (rules.substitute_out_of_stock and similar is not None and not catalogue.available(entry.item_id)):
            for other in similar(entry.item_id):
                if listed is None:
                    listed = set(list(dict.fromkeys(e.item_id for e in ranked
                                                    if _allowed(e.item_id, rules, catalogue)))[:k])
                if other not in seen and other not in listed and _allowed(other, rules, catalogue):
                    seen.add(other)
                    rows.append(Placed(other, entry.score, None, position, f"substitute:{entry.item_id}",
                                       "similar_item"))
                    break
    below = rules.suppression.bought_repeat_below if rules.suppression is not None else 0.0
    if below > 0 and bought and repeat_rate is not None:
        rows = [r for r in rows if r.item_id not in bought
                or repeat_rate.get(catalogue.category.get(r.item_id), 1.0) >= below]  # type: ignore[arg-type]
    if rules.suppression is not None and impressions:
        worn = {item for item, (shown, clicked) in impressions.items()
                if shown >= rules.suppression.impressions and clicked == 0}
        rows = [r for r in rows if r.item_id not in worn] + \
               [replace(r, rule="suppressed") for r in rows if r.item_id in worn]
    boosts = [b for b in rules.boosts if b.window.active(now)]
    if boosts:
        def boosted(r: Placed) -> Placed:
            for b in boosts:
                if r.item_id in b.items or catalogue.category.get(r.item_id) in b.categories:
                    return replace(r, score=r.score * b.factor, rule=r.rule or f"boost:{b.name}")
            return r
        suppressed = [r for r in rows if r.rule == "suppressed"]
        rows = sorted((boosted(r) for r in rows if r.rule != "suppressed"), key=lambda r: -r.score) + suppressed
    if rules.diversity is not None:
        rows = _diversify(rows, rules.diversity.per_category, rules.diversity.top_k, catalogue)
    slots = min(rules.new_item_slots, k)
    fresh = [item for item in new_items if item not in seen and _allowed(item, rules, catalogue)][:slots]
    if fresh:
        seen.update(fresh)
        rows = rows[:k - len(fresh)] + [Placed(item, 0.0, None, 0, "new_item", "new_in") for item in fresh]
    pinned: dict[int, Placed] = {}
    for pin in rules.pins:
        if pin.window.active(now) and pin.position <= k and pin.position not in pinned \
                and _allowed(pin.item, rules, catalogue):
            pinned[pin.position] = Placed(pin.item, 0.0, None, pin.position, f"pin:{pin.name}", "campaign")
    if pinned:
        pinned_items = {p.item_id for p in pinned.values()}
        rest = iter([r for r in rows if r.item_id not in pinned_items])
        merged: list[Placed] = []
        for position in range(1, k + 1):
            nxt = pinned.get(position) or next(rest, None)
            if nxt is None:
                break
            merged.append(nxt)
        rows = merged
    return [replace(r, position=position) for position, r in enumerate(rows[:k], start=1)]


def _diversify(rows: list[Placed], per_category: int, top_k: int, catalogue: Catalogue) -> list[Placed]:
    """Greedy: walk the list, keep an item in the first `top_k` unless its category is full there;
    the held-back items follow in their order. Items without a category are never held back."""
    head: list[Placed] = []
    held: list[Placed] = []
    counts: dict[str, int] = {}
    for r in rows:
        category = catalogue.category.get(r.item_id)
        if len(head) < top_k and category is not None and counts.get(category, 0) >= per_category:
            held.append(replace(r, rule=r.rule or "diversity"))
            continue
        if len(head) < top_k and category is not None:
            counts[category] = counts.get(category, 0) + 1
        head.append(r)
    return head[:top_k] + held + head[top_k:]
