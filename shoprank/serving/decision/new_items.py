"""Today's new items for one shopper, by content: the only way in for an item nobody has touched.

Why content: an item added at noon has no interactions, so no feature, co-occurrence or model score
can place it; what it has is its catalogue entry. A shopper fits it when what they buy (their top
categories and those items' brands and titles, and their live session) and what they pay (their
average price) match it:

    fit = share of the item's category among the shopper's categories (a session category counts 1)
        + BRAND_WEIGHT if the shopper bought the brand
        + TEXT_WEIGHT * the share of the item's title words found in the shopper's items' titles

An item fits only with a category or brand in common and a price inside the shopper's band
(PRICE_BAND times their average price, either way; an unknown price always fits); the best few fill
the decision stage's new-item slots. The catalogue here is the live one, so the result changes the
moment a merchandiser adds an item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from shoprank.search.text import tokens
from shoprank.serving.decision.live_catalogue import NewItem

__all__ = ["fitting_new_items", "matching_new_items"]

BRAND_WEIGHT = 0.5
TEXT_WEIGHT = 0.5
PRICE_BAND = 3.0


def fitting_new_items(new: Sequence[NewItem], user: Mapping | None, session: Sequence[str],
                      describe: Callable[[str], Mapping[str, object]], limit: int,
                      title_words: Callable[[str], frozenset[str]] | None = None) -> list[str]:
    """The `limit` best-fitting of `new` for a shopper with batch row `user` (None: unknown) and
    live-session items `session`; `describe(item)`: an item's category, brand and title;
    `title_words(item)`: its title's words (cached by the caller; tokenised here otherwise)."""
    if not new or limit <= 0:
        return []
    user = user or {}
    shares = dict(zip(user.get("user_top_categories") or [], user.get("user_top_category_shares") or [],
                      strict=False))
    mine = [*session, *(user.get("user_top_items") or [])[:20]]
    described = [describe(item) for item in mine]
    for entry in described[:len(session)]:
        if entry.get("category"):
            shares[entry["category"]] = 1.0
    brands = {str(e["brand"]).casefold() for e in described if e.get("brand")}
    avg = user.get("user_avg_price")
    fitting: list[tuple[float, NewItem]] = []
    for item in new:
        by_category = float(shares.get(item.category, 0.0)) if item.category else 0.0
        by_brand = BRAND_WEIGHT if item.brand and item.brand.casefold() in brands else 0.0
        if not by_category and not by_brand:
            continue
        if item.price is not None and avg and not (avg / PRICE_BAND <= item.price <= avg * PRICE_BAND):
            continue
        fitting.append((by_category + by_brand, item))
    if not fitting:
        return []
    words_of = title_words or (lambda i: frozenset(tokens(str(describe(i).get("title") or ""))))
    words = frozenset().union(*(words_of(i) for i in mine))  # only once something fits: tokenising costs
    scored = []
    for fit, item in fitting:
        title = set(tokens(item.title or ""))
        by_text = TEXT_WEIGHT * len(title & words) / len(title) if title else 0.0
        scored.append((fit + by_text, item.added_at, item.item_id))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [item for _, _, item in scored[:limit]]


def matching_new_items(new: Sequence[NewItem], query_tokens: Sequence[str], limit: int) -> list[str]:
    """Search's side index: today's new items whose title, category and brand hold every word of
    the query (the nightly index cannot know them yet), newest first."""
    wanted = set(query_tokens)
    if not wanted or limit <= 0:
        return []
    return [item.item_id for item in new if wanted <= item.words][:limit]
