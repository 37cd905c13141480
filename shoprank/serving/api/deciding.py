"""The decision stage as every route runs it: ranked items in, the items a shopper is shown out.

One place, so `/recommend` (known shoppers, cold start, anonymous), `/search`, `/similar` and
`/bought-together` cannot apply the rules differently: the rule set, stock and prices come from the
live catalogue, substitutes from the night's similar items, new items by content for this shopper,
and each shown item gets a reason a shopper can read. What the log needs beside the answer (where the
ranker put the item, which rule placed it, the internal candidate source) rides on `Shown` and never
reaches the public body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from shoprank import clock
from shoprank.serving.decision.live_catalogue import LiveCatalogue
from shoprank.serving.decision.new_items import fitting_new_items
from shoprank.serving.decision.reasons import reason_for
from shoprank.serving.decision.rules import RuleSet
from shoprank.serving.decision.stage import Ranked, decide

__all__ = ["Shown", "decide_and_explain"]


@dataclass
class Shown:
    item_id: str
    score: float | None  # the ranker's (or lexical) score; None where nothing scored it
    source: str  # what placed it, publicly: ranker, popular, lexical, ..., or rule
    category: str | None
    reason: dict  # {"template": ..., "args": {...}}
    ranker_position: int | None  # 1-based place in the ranker's order; None: a rule brought it in
    position: int  # 1-based, as displayed
    rule: str | None  # the rule that placed it (None: the ranker's order)
    candidate: str  # the internal candidate source, for the log only

    def public(self, fields: Mapping[str, object] | None = None) -> dict:
        return {"item_id": self.item_id, "score": self.score, "source": self.source, "category": self.category,
                "reason": self.reason, **(fields or {})}


def decide_and_explain(live: LiveCatalogue, ranked: Sequence[Ranked], k: int, *, scored: bool,
                       source: str | Mapping[str, str],
                       user: Mapping | None = None, session: Sequence[str] = (),
                       impressions: Mapping[str, tuple[int, int]] | None = None,
                       new_items: Sequence[str] | None = None, new_item_slots: int = 0,
                       anchor: str | None = None, rules: RuleSet | None = None) -> list[Shown]:
    """Apply the live rules to `ranked` (best first; `reason` holds each item's candidate source) and
    explain each shown item. `scored`: the scores are the ranker's (else they only carry the order,
    and the answer shows none). `source`: what the answer says placed a ranked item (per item, or
    one for all). `new_items`: today's new items to offer (None: those that fit this shopper by
    content); `new_item_slots`: at least this many slots for them, whatever the rules say; `anchor`:
    the item a similar or bought-together list is about; `rules`: an experiment arm's own rule set
    (None: the live one)."""
    rules = rules if rules is not None else live.rules
    if new_item_slots > rules.new_item_slots:
        rules = replace(rules, new_item_slots=new_item_slots)
    history = list((user or {}).get("user_top_items") or [])
    if new_items is None:
        new_items = fitting_new_items(live.new_items(), user, session, lambda i: live.describe(i, _CONTENT),
                                      rules.new_item_slots, live.title_words) if rules.new_item_slots else []
    catalogue = live.catalogue()
    placed = decide(ranked, k, rules, catalogue, clock.now(), impressions, live.similar, new_items,
                    bought=set(history), repeat_rate=live.repeat_rate)
    by_id = {r.item_id: r for r in ranked}
    out = []
    for p in placed:
        origin = by_id.get(p.item_id)
        candidate = origin.reason if origin is not None and origin.reason else "rule"
        out.append(Shown(
            p.item_id, p.score if scored and p.ranker_position is not None else None,
            (source if isinstance(source, str) else source.get(p.item_id, "rule"))
            if p.ranker_position is not None else "rule",
            catalogue.category.get(p.item_id), reason_for(p, catalogue.category, history, session,
                                                          live.neighbours, anchor).as_json(),
            p.ranker_position, p.position, p.rule, candidate))
    return out


_CONTENT = ("category", "brand", "title")
