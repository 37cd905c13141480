"""Similar items, built nightly from the catalogue's text and attributes and from co-purchase.

Why both: content alone finds the same kind of thing (a shopper comparing alternatives, an
out-of-stock item's stand-in, an item with no interactions yet); co-purchase alone finds what goes
with an item but knows nothing of an item nobody bought. An item's similar list is its category's
items ranked by

    cosine(TF-IDF of title, brand and category words) + PRICE_WEIGHT * price closeness
    + CO_PURCHASE_WEIGHT / (1 + rank in the item's bought-together list)

so within a category the text decides, the price band breaks ties (Ta Feng has no titles: there the
price and co-purchase decide), and a co-purchased item of another category can still enter. The
text is tokenised exactly as search tokenises it (`search.text.tokens`).

Work is bounded by the largest category, not the catalogue: a category is scored in blocks of
`BLOCK` rows against its own items (a sparse product), so memory is `BLOCK x category size`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from shoprank.search.index import item_field_text
from shoprank.search.text import tokens

PRICE_WEIGHT = 0.3
CO_PURCHASE_WEIGHT = 0.5
PRICE_RATIO_SPAN = 4.0  # prices 4x apart are not close at all
BLOCK = 512


def _vectors(items: pd.DataFrame) -> sparse.csr_matrix:
    """One L2-normalised TF-IDF row per item over its title, brand and category words (the brand as
    one token, so two brands sharing a word are not alike)."""
    text = item_field_text(items)
    docs = [tokens(t) + tokens(c) + ([f"brand:{b.casefold()}"] if b else [])
            for t, c, b in zip(text["title"], text["category"], text["brand"], strict=True)]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for row, doc in enumerate(docs):
        for token in set(doc):
            rows.append(row)
            cols.append(vocab.setdefault(token, len(vocab)))
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), max(len(vocab), 1)))
    df = np.asarray((matrix > 0).sum(axis=0)).ravel()
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    matrix = matrix @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)


def _price_closeness(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 for the same price, falling to 0 at PRICE_RATIO_SPAN apart; 0 where a price is unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.abs(np.log(a[:, None]) - np.log(b[None, :])) / math.log(PRICE_RATIO_SPAN)
    close = np.clip(1.0 - gap, 0.0, 1.0)
    return np.nan_to_num(close, nan=0.0)


def similar_items(catalogue: pd.DataFrame, neighbours: Mapping[str, Sequence[str]] | None = None,
                  n: int = 20) -> pd.DataFrame:
    """Per catalogue item, its `n` most similar items (never itself), best first: a frame with
    `item_id` and `similar` (a list of item ids)."""
    items = catalogue.drop_duplicates("item_id", keep="last").reset_index(drop=True)
    items["item_id"] = items["item_id"].astype(str)
    if items.empty:
        return pd.DataFrame({"item_id": pd.Series([], dtype=str), "similar": pd.Series([], dtype=object)})
    vectors = _vectors(items)
    prices = pd.to_numeric(items.get("price"), errors="coerce").to_numpy(dtype="float64") \
        if "price" in items else np.full(len(items), np.nan)
    prices = np.where(prices > 0, prices, np.nan)
    neighbours = neighbours or {}
    ids = items["item_id"].to_numpy(dtype=object)
    out: list[list[str]] = [[] for _ in range(len(items))]
    groups = items.groupby(items["category"].fillna("").astype(str), sort=False).indices
    for members in groups.values():
        members = np.asarray(members)
        group_vectors = vectors[members]
        for start in range(0, len(members), BLOCK):
            block = members[start:start + BLOCK]
            scores = (vectors[block] @ group_vectors.T).toarray()
            scores += PRICE_WEIGHT * _price_closeness(prices[block], prices[members])
            scores[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # never itself
            top = min(n, len(members) - 1)
            if top <= 0:
                continue
            best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
            for r, row in enumerate(block):
                cand = best[r][np.isfinite(scores[r, best[r]])]
                out[row] = _merge(ids[members[cand]], scores[r, cand], neighbours.get(ids[row], ()), ids[row], n)
    for row, item in enumerate(ids):
        if not out[row] and neighbours.get(item):
            out[row] = _merge(np.zeros(0, dtype=object), np.zeros(0), neighbours[item], item, n)
    return pd.DataFrame({"item_id": ids.astype(str), "similar": out})


def _merge(content_ids: np.ndarray, content_scores: np.ndarray, bought_with: Sequence[str], item: str,
           n: int) -> list[str]:
    """Content scores plus the co-purchase bonus; ties by item id, so the list is reproducible."""
    score = dict(zip(content_ids.tolist(), content_scores.tolist(), strict=True))
    for rank, other in enumerate(list(bought_with)[:n]):
        if other != item:
            score[other] = score.get(other, 0.0) + CO_PURCHASE_WEIGHT / (1 + rank)
    return [i for i, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
