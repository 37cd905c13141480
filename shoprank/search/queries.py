"""Labelled queries for training and evaluating search, from the logs.

- Real search events (the synthetic shop, a live shop): a query, then what the same user viewed,
  carted or bought in that session before their next query. Relevance is graded by the strongest
  action (purchase 3, cart 2, view 1).
- Logs without queries (Ta Feng, REES46): the pseudo-query protocol of personalised product search
  papers (HEM, Ai et al., SIGIR 2017): a purchase's query is the purchased item's category text
  (plus its brand where the catalogue has one); the items bought under that query by the user that
  day are its relevant items.

Both give one row per (query, relevant item): query_id, user, event_time, query, item_id, relevance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.data.search_log import QUERY_COLUMNS, RELEVANCE, query_ids, session_queries  # noqa: F401 - session_queries
from shoprank.search.text import normalise, query_tokens


def pseudo_query_text(category: pd.Series, brand: pd.Series | None = None) -> pd.Series:
    """The category's words (path separators as spaces), then the brand when there is one."""
    text = category.fillna("").astype(str).map(normalise)
    if brand is not None:
        text = (text + " " + brand.fillna("").astype(str).map(normalise)).str.strip()
    return text


def pseudo_queries(interactions: pd.DataFrame, items: pd.DataFrame, user_col: str = "user_key",
                   event_types: tuple[str, ...] = ("purchase",), window: str = "D") -> pd.DataFrame:
    """One query per (user, time window, pseudo-query text): the items of that text the user acted on
    in that window (a day for a basket shop; minutes for a browsing log).

    Items whose text has no searchable token after scrubbing (a numeric category id in place of a
    readable category, say) give no query: nobody types an 18-digit id."""
    acts = interactions[interactions["event_type"].isin(list(event_types)) & interactions["item_id"].notna()]
    catalogue = items.drop_duplicates("item_id", keep="last").set_index("item_id")
    brand = catalogue["brand"] if "brand" in catalogue else None
    text = pseudo_query_text(catalogue["category"], brand)
    searchable = text[[bool(query_tokens(t)) for t in text]]
    acts = acts[acts["item_id"].isin(searchable.index)]
    if acts.empty:
        return pd.DataFrame(columns=[user_col, *QUERY_COLUMNS])
    acts = acts.assign(query=searchable.reindex(acts["item_id"]).to_numpy(), day=acts["event_time"].dt.floor(window),
                       relevance=acts["event_type"].map(RELEVANCE).fillna(1).astype(int))
    grouped = acts.groupby([user_col, "day", "query", "item_id"], as_index=False).agg(
        event_time=("event_time", "min"), relevance=("relevance", "max"))
    # the query happens at the first action under it that day
    grouped["event_time"] = grouped.groupby([user_col, "day", "query"])["event_time"].transform("min")
    grouped["query_id"] = query_ids(grouped[user_col], grouped["day"], grouped["query"])
    return grouped[[user_col, *QUERY_COLUMNS]].reset_index(drop=True)


def sample_queries(queries: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """All rows of `n` randomly chosen queries (all of them when there are fewer)."""
    ids = queries["query_id"].unique()
    if len(ids) <= n:
        return queries
    chosen = np.random.default_rng(seed).choice(ids, n, replace=False)
    return queries[queries["query_id"].isin(set(chosen))].reset_index(drop=True)
