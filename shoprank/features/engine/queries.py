"""The feature job as SQL: one text per table, run unchanged by DuckDB (one machine) and Spark (a cluster).

Each query reads the pseudonymised `interactions` (user_key, item_id, event_type, event_time, price,
quantity) and the catalogue `items` (item_id, category, price), both registered by the engine, and
computes one table as of the instant `at`, looking only at events strictly before it (labels: at
and after it). The definitions are the ones of `features/compute.py` (the pandas path the demo has
run on since the first ranker), so the two can be compared row for row; where the pandas path
breaks a tie by the order rows happened to arrive in, the SQL breaks it by the id, which is the
only order two engines can agree on.

Literals are spelled `CAST(1 AS DOUBLE)` where they meet an aggregate: Spark reads `1.0` as a
DECIMAL, and an average of decimals is rounded to the decimal's scale.

Why SQL text and not a dataframe API: it is the one language both engines run natively, with no
translation layer between the definition and the plan; the handful of spellings they disagree on
live in `dialect.py`.
"""

from __future__ import annotations

import pandas as pd

from shoprank.features.compute import (
    DECAY_HALF_LIFE_DAYS,
    INTERACTION_WEIGHT,
    LOOKBACK,
    TOP_CATEGORIES,
    TOP_ITEMS,
)
from shoprank.features.engine.dialect import Dialect

TOP_ITEM_NEIGHBOURS = 20
DAY_S = 86400.0


def _past(d: Dialect, at: pd.Timestamp, days: float) -> str:
    """The events in the `days` before `at` with their interaction weight and day (the basket)."""
    weight = " ".join(f"WHEN '{kind}' THEN {w}" for kind, w in INTERACTION_WEIGHT.items())
    return f"""
    SELECT user_key, item_id, event_type, event_time, price,
           (CASE event_type {weight} ELSE 0.0 END)
             * LEAST(GREATEST(COALESCE(CAST(quantity AS DOUBLE), 1.0), 1.0), 10.0) AS weight,
           CAST(event_time AS DATE) AS day,
           CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END AS is_buy,
           event_time >= {d.timestamp(at - pd.Timedelta(days=7))} AS in_7d,
           event_time >= {d.timestamp(at - pd.Timedelta(days=30))} AS in_30d,
           ({d.epoch_seconds(d.timestamp(at))} - {d.epoch_seconds('event_time')}) / {DAY_S} AS age_days
    FROM interactions
    WHERE event_time < {d.timestamp(at)} AND event_time >= {d.timestamp(at - pd.Timedelta(days=days))}"""


def item_stats(d: Dialect, at: pd.Timestamp) -> str:
    """One row per catalogue item: popularity windows, buyers, repeat rate and its percentile."""
    lookback = LOOKBACK.days
    return f"""
    WITH past AS ({_past(d, at, lookback)}),
    buys AS (SELECT * FROM past WHERE is_buy = 1),
    per_pair AS (SELECT item_id, user_key, COUNT(*) AS n FROM buys GROUP BY item_id, user_key),
    repeats AS (SELECT item_id, AVG(CASE WHEN n > 1 THEN CAST(1 AS DOUBLE) ELSE CAST(0 AS DOUBLE) END) AS rate
                FROM per_pair GROUP BY item_id),
    b7 AS (SELECT item_id, COUNT(*) AS n FROM buys WHERE in_7d GROUP BY item_id),
    b30 AS (SELECT item_id, COUNT(*) AS n, COUNT(DISTINCT user_key) AS buyers FROM buys
            WHERE in_30d GROUP BY item_id),
    i7 AS (SELECT item_id, COUNT(*) AS n FROM past WHERE in_7d GROUP BY item_id),
    totals AS (SELECT (SELECT COUNT(*) FROM buys WHERE in_7d) AS buys_7d,
                      (SELECT COUNT(DISTINCT user_key) FROM buys WHERE in_30d) AS buyers_30d),
    joined AS (
      SELECT c.item_id, CAST(c.category AS STRING) AS item_category,
             COALESCE(CAST(c.price AS DOUBLE), 0.0) AS item_price,
             COALESCE(b7.n, 0) AS item_pop_7d, COALESCE(b30.n, 0) AS item_pop_30d,
             COALESCE(b30.buyers, 0) AS item_buyers_30d, r.rate AS rate,
             COALESCE(i7.n, 0) AS item_interactions_7d,
             COALESCE(b7.n, 0) * 1e5 / GREATEST(t.buys_7d, 1) AS item_pop_7d_per_100k,
             COALESCE(b30.buyers, 0) * 1e4 / GREATEST(t.buyers_30d, 1) AS item_buyers_30d_per_10k
      FROM items c CROSS JOIN totals t
      LEFT JOIN b7 ON b7.item_id = c.item_id LEFT JOIN b30 ON b30.item_id = c.item_id
      LEFT JOIN repeats r ON r.item_id = c.item_id LEFT JOIN i7 ON i7.item_id = c.item_id)
    SELECT item_id, item_category, item_price, item_pop_7d, item_pop_30d, item_buyers_30d,
           COALESCE(rate, 0.0) AS item_repeat_rate, item_interactions_7d, item_pop_7d_per_100k,
           item_buyers_30d_per_10k,
           -- the percentile among the items bought in the window, ties at their mean rank (pandas' rank(pct=True))
           CASE WHEN rate IS NULL THEN CAST(0 AS DOUBLE) ELSE
             (RANK() OVER (PARTITION BY rate IS NULL ORDER BY rate)
              + (COUNT(*) OVER (PARTITION BY rate IS NULL, rate) - 1) / CAST(2 AS DOUBLE))
             / COUNT(*) OVER (PARTITION BY rate IS NULL) END AS item_repeat_pct
    FROM joined"""


def user_stats(d: Dialect, at: pd.Timestamp) -> str:
    """One row per user active in the lookback: counts, recency, own top items and top categories."""
    lookback = LOOKBACK.days
    return f"""
    WITH past AS ({_past(d, at, lookback)}),
    per_user AS (
      SELECT user_key, COUNT(*) AS user_n_interactions, MIN(age_days) AS user_days_since_last,
             MAX(age_days) AS user_history_days
      FROM past GROUP BY user_key),
    bought AS (
      SELECT user_key, COUNT(*) AS user_n_purchases, COUNT(DISTINCT day) AS user_n_baskets,
             COUNT(DISTINCT item_id) AS user_n_items, AVG(price) AS user_avg_price,
             COUNT(DISTINCT CASE WHEN in_30d THEN day END) AS user_n_baskets_30d
      FROM past WHERE is_buy = 1 GROUP BY user_key),
    pairs AS (
      SELECT user_key, item_id, SUM(weight) AS score, CAST(SUM(is_buy) AS BIGINT) AS n_buys,
             SUM(is_buy * pow(0.5, age_days / {DECAY_HALF_LIFE_DAYS})) AS decayed,
             MAX(age_days) AS first_days, MIN(age_days) AS days
      FROM past GROUP BY user_key, item_id),
    -- the repurchase baseline's order: purchases, then recency, then interaction weight, then id
    ranked AS (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY user_key
                                   ORDER BY n_buys DESC, days ASC, score DESC, item_id ASC) AS pos
      FROM pairs),
    tops AS (
      SELECT user_key,
             {d.ordered_list('item_id', 'pos')} AS user_top_items,
             {d.ordered_list('score', 'pos')} AS user_top_item_scores,
             {d.ordered_list('days', 'pos')} AS user_top_item_days,
             {d.ordered_list('n_buys', 'pos')} AS user_top_item_counts,
             {d.ordered_list('decayed', 'pos')} AS user_top_item_decayed,
             {d.ordered_list('first_days', 'pos')} AS user_top_item_first_days
      FROM ranked WHERE pos <= {TOP_ITEMS} GROUP BY user_key),
    cats AS (
      SELECT p.user_key, CAST(c.category AS STRING) AS category, SUM(p.weight) AS weight
      FROM past p JOIN items c ON c.item_id = p.item_id
      WHERE c.category IS NOT NULL GROUP BY p.user_key, CAST(c.category AS STRING)),
    cat_ranked AS (
      SELECT user_key, category,
             weight / GREATEST(SUM(weight) OVER (PARTITION BY user_key), 1e-9) AS share,
             ROW_NUMBER() OVER (PARTITION BY user_key ORDER BY weight DESC, category ASC) AS pos
      FROM cats),
    top_cats AS (
      SELECT user_key, {d.ordered_list('category', 'pos')} AS user_top_categories,
             {d.ordered_list('share', 'pos')} AS user_top_category_shares
      FROM cat_ranked WHERE pos <= {TOP_CATEGORIES} GROUP BY user_key)
    SELECT u.user_key, u.user_n_interactions,
           COALESCE(b.user_n_purchases, 0) AS user_n_purchases, COALESCE(b.user_n_baskets, 0) AS user_n_baskets,
           COALESCE(b.user_n_items, 0) AS user_n_items, COALESCE(b.user_avg_price, 0.0) AS user_avg_price,
           u.user_days_since_last, u.user_history_days,
           COALESCE(b.user_n_baskets_30d, 0) AS user_n_baskets_30d,
           t.user_top_items, t.user_top_item_scores, t.user_top_item_days, t.user_top_item_counts,
           t.user_top_item_decayed, t.user_top_item_first_days,
           tc.user_top_categories, tc.user_top_category_shares
    FROM per_user u LEFT JOIN bought b ON b.user_key = u.user_key
    LEFT JOIN tops t ON t.user_key = u.user_key LEFT JOIN top_cats tc ON tc.user_key = u.user_key"""


def item_neighbours(d: Dialect, at: pd.Timestamp, top: int = TOP_ITEM_NEIGHBOURS) -> str:
    """Per item, the `top` items most often in the same basket (user-day) in the 30 days before `at`:
    sim(i -> j) = baskets holding both / baskets holding i (P(j | i)), ties by j's purchases, then id."""
    return f"""
    WITH buys AS (SELECT DISTINCT user_key, day, item_id FROM ({_past(d, at, 30)}) p WHERE is_buy = 1),
    per_item AS (SELECT item_id, COUNT(*) AS baskets FROM buys GROUP BY item_id),
    pairs AS (
      SELECT a.item_id AS item_id, b.item_id AS neighbour, COUNT(*) AS together
      FROM buys a JOIN buys b ON a.user_key = b.user_key AND a.day = b.day AND a.item_id <> b.item_id
      GROUP BY a.item_id, b.item_id),
    scored AS (
      SELECT p.item_id, p.neighbour, p.together / CAST(i.baskets AS DOUBLE) AS sim,
             ROW_NUMBER() OVER (PARTITION BY p.item_id
                                ORDER BY p.together / CAST(i.baskets AS DOUBLE) DESC, n.baskets DESC,
                                         p.neighbour ASC) AS pos
      FROM pairs p JOIN per_item i ON i.item_id = p.item_id JOIN per_item n ON n.item_id = p.neighbour)
    SELECT item_id, {d.ordered_list('neighbour', 'pos')} AS neighbours,
           {d.ordered_list('sim', 'pos')} AS neighbour_scores
    FROM scored WHERE pos <= {top} GROUP BY item_id"""


def labels(d: Dialect, at: pd.Timestamp, label_days: int) -> str:
    """The (user, item) pairs bought in [at, at + label_days): what a ranker trained at `at` should find."""
    return f"""
    SELECT DISTINCT user_key, item_id FROM interactions
    WHERE event_type = 'purchase' AND event_time >= {d.timestamp(at)}
      AND event_time < {d.timestamp(at + pd.Timedelta(days=label_days))}"""


COLUMNS = {"interactions": ("user_key", "item_id", "event_type", "event_time", "price", "quantity"),
           "items": ("item_id", "category", "price")}
QUERIES = {"item_stats": item_stats, "user_stats": user_stats, "item_neighbours": item_neighbours}
KEYS = {"item_stats": ["item_id"], "user_stats": ["user_key"], "item_neighbours": ["item_id"],
        "labels": ["user_key", "item_id"]}
