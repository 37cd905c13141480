"""Why an item is shown, in words a shopper can read: a template id and its arguments.

Why templates and not text: the front end owns the language and the wording (and translates it);
the API owns the facts. The arguments are public things only (an item the shopper bought, a
category, a campaign's name), never an internal name such as a candidate source, a score or a model.

Templates:
- `bought_with` {item_id}: bought together with an item the shopper has (or has in the session);
- `similar_shoppers`: shoppers with similar baskets bought it;
- `buy_again`: the shopper buys it repeatedly;
- `viewed_recently`: it is in the shopper's live session;
- `popular_in` {category}: popular now (cold start, or the popular candidates);
- `new_in` {category}: new in the catalogue today;
- `campaign` {campaign}: a merchandiser's boost or pin;
- `instead_of` {item_id}: the shown item stands in for one that is out of stock;
- `matches_search`: it matches the shopper's search;
- `similar_item` {item_id}: like the item the shopper is looking at (`/similar`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shoprank.serving.decision.stage import Placed

__all__ = ["Reason", "reason_for"]


@dataclass(frozen=True)
class Reason:
    template: str
    args: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"template": self.template, "args": dict(self.args)}


def _bought_with(item: str, anchors: Sequence[str], neighbours: Mapping[str, Sequence[str]]) -> str | None:
    """The first of the shopper's items (most relevant first) that `item` is bought together with."""
    for anchor in anchors:
        if anchor != item and item in neighbours.get(anchor, ()):
            return anchor
    return None


def reason_for(placed: Placed, category: Mapping[str, str | None], history: Sequence[str] = (),
               session: Sequence[str] = (), neighbours: Mapping[str, Sequence[str]] | None = None,
               anchor: str | None = None) -> Reason:
    """The reason for one placed item. `placed.reason` carries where it came from (the candidate
    source: own, cooc, knn, sequence, session, session_cooc, popular) and `placed.rule` what placed it;
    `history`: the shopper's items, most relevant first; `session`: the live session's items, newest
    first; `neighbours`: each item's bought-together items (the served neighbours artifact);
    `anchor`: the item a `/similar` or `/bought-together` list is about."""
    item, rule, source = placed.item_id, placed.rule or "", placed.reason or ""
    where = category.get(item)
    if rule.startswith(("pin:", "boost:")):
        return Reason("campaign", {"campaign": rule.split(":", 1)[1]})
    if rule == "new_item":
        return Reason("new_in", {"category": where} if where else {})
    if rule.startswith("substitute:"):
        return Reason("instead_of", {"item_id": rule.split(":", 1)[1]})
    if anchor is not None and source in ("similar", "bought_together"):
        return Reason("similar_item" if source == "similar" else "bought_with", {"item_id": anchor})
    if source == "search":
        return Reason("matches_search")
    if source == "session" or (item in session and source != "knn"):
        return Reason("viewed_recently")
    if source in ("cooc", "session_cooc", "sequence"):  # the sequence model's next items: what others bought next
        anchor = _bought_with(item, [*session, *history] if source != "cooc" else history, neighbours or {})
        return Reason("bought_with", {"item_id": anchor}) if anchor else Reason("similar_shoppers")
    if source == "knn":
        return Reason("similar_shoppers")
    if source == "own":
        return Reason("buy_again")
    return Reason("popular_in", {"category": where} if where else {})
