"""Similar items by content, where the catalogue has content: the synthetic shop (titles, brands,
categories, prices) and the REES46 sample (category paths and brands). Ta Feng has neither titles nor
brands, so its similar lists are category, price and co-purchase only."""

from __future__ import annotations

import pandas as pd
import pytest

from shoprank.data.sources.synthetic import SyntheticSource
from shoprank.search.similar import similar_items
from shoprank.search.text import tokens
from tests.conftest import REES46_CSV


def _share(items: pd.DataFrame, similar: pd.DataFrame, column: str) -> float:
    """Of all (item, similar item) pairs, the share that agree on `column`."""
    value = dict(zip(items["item_id"], items[column], strict=True))
    pairs = [(value[i], value[s]) for i, lst in zip(similar["item_id"], similar["similar"], strict=True) for s in lst]
    return sum(a == b for a, b in pairs) / max(len(pairs), 1)


def test_synthetic_similar_items_share_category_and_more_title_words_than_chance():
    items = SyntheticSource(n_items=2_000).items()
    similar = similar_items(items, n=10)
    assert _share(items, similar, "category") == 1.0  # without co-purchase, only the category's items
    words = {i: set(tokens(t)) for i, t in zip(items["item_id"], items["title"], strict=True)}
    overlap = [len(words[i] & words[s]) for i, lst in zip(similar["item_id"], similar["similar"], strict=True)
               for s in lst]
    same_category = items.groupby("category")["item_id"].apply(list)
    chance = [len(words[a] & words[b]) for group in same_category for a, b in zip(group, group[1:], strict=False)]
    assert sum(overlap) / len(overlap) > 1.2 * sum(chance) / len(chance)  # text decides within a category
    assert _share(items, similar, "brand") > items.groupby("category")["brand"].agg(
        lambda b: (b.value_counts(normalize=True) ** 2).sum()).mean()  # more same-brand than a random pick


def test_rees46_similar_items_follow_category_and_brand():
    if not REES46_CSV.exists():
        pytest.skip(f"the REES46 sample is not at {REES46_CSV}")
    from shoprank.data.sources.rees46 import Rees46Source

    items = Rees46Source(REES46_CSV).items()
    similar = similar_items(items, n=10)
    has = similar[similar["similar"].map(len) > 0]
    assert len(has) > 0.5 * len(items)
    assert _share(items, has, "category") == 1.0
    branded = items[items["brand"].notna()]
    ids = set(branded["item_id"])
    mine = has[has["item_id"].isin(ids)].assign(similar=lambda f: f["similar"].map(
        lambda lst: [s for s in lst if s in ids]))
    assert _share(branded, mine, "brand") > 0.5  # a same-brand item first, where the category has one
