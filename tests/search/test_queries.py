"""Labelled queries from the logs: real search sessions, and pseudo-queries where there are none."""

import pandas as pd

from shoprank.features.pseudonymise import to_public_queries
from shoprank.search.queries import pseudo_queries, session_queries

T0 = pd.Timestamp("2024-03-01 10:00", tz="UTC")


def event(minute, user, kind, item=None, session="s1", query=None):
    return {"event_time": T0 + pd.Timedelta(minutes=minute), "user_id": user, "item_id": item, "event_type": kind,
            "price": None, "quantity": None, "session_id": session, "query": query}


def test_a_query_owns_what_its_session_did_until_the_next_query():
    events = pd.DataFrame([
        event(0, "u1", "search", query="green tea"),
        event(1, "u1", "view", "a1"), event(2, "u1", "cart", "a1"), event(3, "u1", "view", "a2"),
        event(4, "u1", "search", query="chocolate"),
        event(5, "u1", "purchase", "b1"), event(6, "u1", "view", "a1"),
        event(0, "u2", "search", session="s2", query="milk"),  # nothing after it: no labels, no query
        event(1, "u3", "view", "c1", session="s3"),  # a session without a search
    ])
    out = session_queries(events)
    by_query = {q: dict(zip(g["item_id"], g["relevance"], strict=True)) for q, g in out.groupby("query")}
    assert by_query == {"green tea": {"a1": 2, "a2": 1}, "chocolate": {"b1": 3, "a1": 1}}
    assert out.groupby("query")["query_id"].nunique().eq(1).all() and out["query_id"].nunique() == 2
    assert set(out["user_id"]) == {"u1"}


def test_pseudo_queries_are_the_category_text_of_each_days_purchases():
    items = pd.DataFrame({"item_id": ["a1", "a2", "b1", "n1"], "category": ["110411", "110411", "drinks.tea",
                                                                            "2053013555631882655"],
                          "brand": [None, None, "Lipton", None]})
    inter = pd.DataFrame({"user_key": ["k1"] * 5 + ["k2"],
                          "item_id": ["a1", "a2", "b1", "a1", "n1", "a1"],
                          "event_type": ["purchase", "purchase", "purchase", "purchase", "purchase", "view"],
                          "event_time": [T0, T0 + pd.Timedelta(hours=1), T0, T0 + pd.Timedelta(days=1), T0, T0]})
    out = pseudo_queries(inter, items)
    groups = {(q, t.date()): set(g["item_id"]) for (q, t), g in out.groupby(["query", "event_time"])}
    assert groups == {("110411", T0.date()): {"a1", "a2"}, ("drinks tea lipton", T0.date()): {"b1"},
                      ("110411", (T0 + pd.Timedelta(days=1)).date()): {"a1"}}
    assert out["query_id"].nunique() == 3
    # the numeric category id is no query (nobody types it); views are not purchases
    assert "n1" not in set(out["item_id"]) and "k2" not in set(out["user_key"])


def test_the_search_log_crosses_the_zone_pseudonymised_and_scrubbed():
    events = pd.DataFrame([
        event(0, "jane@example.com", "search", query="tea for jane@example.com"),
        event(1, "jane@example.com", "view", "a1"),
        event(0, "u2", "search", session="s2", query="call 13800138000 milk"),
        event(1, "u2", "purchase", "c1", session="s2"),
    ])
    public = to_public_queries(events, b"k" * 32)
    text = public.to_csv()
    for secret in ("jane", "example.com", "13800138000", "s1", "s2"):
        assert secret not in text
    assert sorted(public["query"]) == ["call [number] milk", "tea for [email]"]
    assert list(public.columns) == ["user_key", "query_id", "event_time", "query", "item_id", "relevance"]
