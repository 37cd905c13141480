"""The feature job as SQL: one text per table, run unchanged by DuckDB (one machine) and Spark (a cluster).

Each query reads the pseudonymised `interactions` (user_key, item_id, event_type, event_time, price,
quantity) and the catalogue `items` (item_id, category, price), both registered by the engine, and
computes one table as of the instant `at`, looking only at events strictly before it (labels: at
and after it). A pandas implementation of the same definitions (`tests/reference/`) is held equal
to it row for row in the tests. Ties in every ranked list are broken by one rule: the list's own
keys first (scores compared rounded to 1e-9, so sums added in another order rank the same), then
the popularity rank (co-occurrence lists) or the id (every other list), which is the only order
two engines can agree on.

Literals are spelled `CAST(1 AS DOUBLE)` where they meet an aggregate: Spark reads `1.0` as a
DECIMAL, and an average of decimals is rounded to the decimal's scale.

Why SQL text and not a dataframe API: it is the one language both engines run natively, with no
translation layer between the definition and the plan; the handful of spellings they disagree on
live in `dialect.py`.
"""

from __future__ import annotations

import pandas as pd

from shoprank.features.engine.ctes import split_ctes, with_ctes
from shoprank.features.engine.dialect import Dialect
from shoprank.features.snapshots import (
    DECAY_HALF_LIFE_DAYS,
    INTERACTION_WEIGHT,
    LOOKBACK,
    SEQUENCE_ITEMS,
    TOP_CATEGORIES,
    TOP_ITEMS,
)

TOP_ITEM_NEIGHBOURS = 20
DAY_S = 86400.0
TOP_COOC = 50  # co-occurrence items per user ("bought together" with the user's history)
COOC_NEIGHBOURS = 200  # each item's neighbours that the user's scores sum over
TOP_KNN = 50  # user-kNN items per user
KNN_NEIGHBOURS = 300  # similar shoppers per user
KNN_HALF_LIFE_DAYS = 30.0
# The approximate kNN's per-item cap (see `_knn_ctes`); its recall against the exact lists is
# measured on Ta Feng by `make bench-engines`.
KNN_ITEM_BUYERS: int | None = 1000
_PACK = 2**32  # two integer codes in one BIGINT key: codes are row numbers, far below 2^31


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


def user_stats(d: Dialect, at: pd.Timestamp, knn_cap: int | None = KNN_ITEM_BUYERS,
               focus: str | None = None) -> str:
    """One row per user active in the lookback, in the Feast schema's column order: counts, recency,
    own top items, top categories, the co-occurrence and user-kNN candidate lists, and the item sequence.

    `focus` names a registered relation with a `user_key` column: the rows of only those users, each
    exactly as the whole table has it. The neighbours (co-occurrence, similar shoppers) still come from
    everyone's events; only the per-user work is cut. It is what makes a snapshot per day affordable
    when each day needs only the few users whose prediction falls on it (`evaluation/nbr_served.py`)."""
    lookback = LOOKBACK.days
    own = "past" if focus is None else "own_past"
    own_cte = "" if focus is None else f"""
    own_past AS (SELECT * FROM past WHERE user_key IN (SELECT user_key FROM {focus})),"""
    return f"""
    WITH past AS ({_past(d, at, lookback)}),{own_cte}
    per_user AS (
      SELECT user_key, COUNT(*) AS user_n_interactions, MIN(age_days) AS user_days_since_last,
             MAX(age_days) AS user_history_days
      FROM {own} GROUP BY user_key),
    bought AS (
      SELECT user_key, COUNT(*) AS user_n_purchases, COUNT(DISTINCT day) AS user_n_baskets,
             COUNT(DISTINCT item_id) AS user_n_items, AVG(price) AS user_avg_price,
             COUNT(DISTINCT CASE WHEN in_30d THEN day END) AS user_n_baskets_30d
      FROM {own} WHERE is_buy = 1 GROUP BY user_key),
    pairs AS (
      SELECT user_key, item_id, SUM(weight) AS score, CAST(SUM(is_buy) AS BIGINT) AS n_buys,
             SUM(is_buy * pow(0.5, age_days / {DECAY_HALF_LIFE_DAYS})) AS decayed,
             MAX(age_days) AS first_days, MIN(age_days) AS days
      FROM {own} GROUP BY user_key, item_id),
    -- the repurchase baseline's order: purchases, then recency, then interaction weight, then id
    ranked AS (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY user_key
                                   ORDER BY n_buys DESC, days ASC, ROUND(score, 9) DESC, item_id ASC) AS pos
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
    -- the sequence model's history: distinct items bought, by first purchase, the newest SEQUENCE_ITEMS
    first_buys AS (
      SELECT user_key, item_id, MAX(age_days) AS first_age FROM {own} WHERE is_buy = 1 GROUP BY user_key, item_id),
    seq_ranked AS (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY user_key ORDER BY first_age ASC, item_id DESC) AS pos
      FROM first_buys),
    sequences AS (
      SELECT user_key, {d.ordered_list('item_id', '-pos')} AS user_item_sequence
      FROM seq_ranked WHERE pos <= {SEQUENCE_ITEMS} GROUP BY user_key),
    cats AS (
      SELECT p.user_key, CAST(c.category AS STRING) AS category, SUM(p.weight) AS weight
      FROM {own} p JOIN items c ON c.item_id = p.item_id
      WHERE c.category IS NOT NULL GROUP BY p.user_key, CAST(c.category AS STRING)),
    cat_ranked AS (
      SELECT user_key, category,
             weight / GREATEST(SUM(weight) OVER (PARTITION BY user_key), 1e-9) AS share,
             ROW_NUMBER() OVER (PARTITION BY user_key ORDER BY ROUND(weight, 9) DESC, category ASC) AS pos
      FROM cats),
    top_cats AS (
      SELECT user_key, {d.ordered_list('category', 'pos')} AS user_top_categories,
             {d.ordered_list('share', 'pos')} AS user_top_category_shares
      FROM cat_ranked WHERE pos <= {TOP_CATEGORIES} GROUP BY user_key),
    {_coded_purchases(d, focus)},
    {_cooc_ctes(d, at, focused=focus is not None)},
    {_knn_ctes(d, at, knn_cap, focused=focus is not None)}
    SELECT u.user_key,
           COALESCE(b.user_n_purchases, 0) AS user_n_purchases, COALESCE(b.user_n_baskets, 0) AS user_n_baskets,
           COALESCE(b.user_n_items, 0) AS user_n_items, u.user_days_since_last,
           COALESCE(b.user_avg_price, 0.0) AS user_avg_price, u.user_n_interactions,
           {_listed(d, 't.user_top_items', 'STRING')} AS user_top_items,
           {_listed(d, 't.user_top_item_scores', 'DOUBLE')} AS user_top_item_scores,
           {_listed(d, 't.user_top_item_days', 'DOUBLE')} AS user_top_item_days,
           {_listed(d, 'tc.user_top_categories', 'STRING')} AS user_top_categories,
           {_listed(d, 't.user_top_item_counts', 'BIGINT')} AS user_top_item_counts,
           {_listed(d, 'tc.user_top_category_shares', 'DOUBLE')} AS user_top_category_shares,
           COALESCE(b.user_n_baskets_30d, 0) AS user_n_baskets_30d,
           {_listed(d, 'co.user_cooc_items', 'STRING')} AS user_cooc_items,
           {_listed(d, 'co.user_cooc_scores', 'DOUBLE')} AS user_cooc_scores,
           {_listed(d, 't.user_top_item_decayed', 'DOUBLE')} AS user_top_item_decayed,
           {_listed(d, 't.user_top_item_first_days', 'DOUBLE')} AS user_top_item_first_days,
           u.user_history_days,
           {_listed(d, 'kn.user_knn_items', 'STRING')} AS user_knn_items,
           {_listed(d, 'kn.user_knn_scores', 'DOUBLE')} AS user_knn_scores,
           {_listed(d, 'sq.user_item_sequence', 'STRING')} AS user_item_sequence
    FROM per_user u LEFT JOIN bought b ON b.user_key = u.user_key
    LEFT JOIN tops t ON t.user_key = u.user_key LEFT JOIN top_cats tc ON tc.user_key = u.user_key
    LEFT JOIN cooc co ON co.user_key = u.user_key LEFT JOIN knn kn ON kn.user_key = u.user_key
    LEFT JOIN sequences sq ON sq.user_key = u.user_key"""


def _listed(d: Dialect, column: str, element: str) -> str:
    """A list column that is empty, never NULL, for a user without any (Feast and the model read [])."""
    return f"COALESCE({column}, {d.empty_list(element)})"


def top_n_ctes(d: Dialect, name: str, source: str, group: str, item: str, score: str, n: int,
              tie: str | None = None, join: str = "") -> str:
    """CTEs `{name}_cut` and `{name}` (group, item, score, pos): each `group`'s `n` best `item`s of
    `source` by `score` (rounded to 1e-9) descending, then `tie` ascending (default: the item).

    Each group's n-th best score is found first and only the rows at or above it are sorted: the
    same rows and order as sorting every row (ties at the cut are all kept, then numbered), but
    the window sorts about n rows per group instead of all of them (a user's scored items are
    thousands, the list is tens). `join` (on `source` as `t`) brings in the tie-break's column."""
    rounded = f"ROUND({score}, 9)"
    return f"""{name}_cut AS (
      SELECT {group}, {d.nth_largest(rounded, n)} AS cut FROM {source} GROUP BY {group}),
    {name} AS (
      SELECT {group}, {item}, {score}, pos FROM (
        SELECT t.{group}, t.{item}, t.{score},
               ROW_NUMBER() OVER (PARTITION BY t.{group}
                                  ORDER BY ROUND(t.{score}, 9) DESC, {tie or "t." + item} ASC) AS pos
        FROM {source} t JOIN {name}_cut c ON c.{group} = t.{group} AND ROUND(t.{score}, 9) >= c.cut
        {join}) ranked
      WHERE pos <= {int(n)})"""


def _coded_purchases(d: Dialect, focus: str | None = None) -> str:
    """CTEs over the window's purchases with integer codes (joins and groups on integers, not on
    pseudonyms and ids, are most of the lists' speed): `buying_users` (user_key, u) and `bought_items` (item_id, i),
    both numbered in id order so that "ties by code" is "ties by id", and `coded` (u, i, day, b, w):
    the purchase lines with their day number `b`, event time and decayed weight. With a `focus`
    relation, also `focus_codes` (u): the codes of its users, whose lists are the only ones computed."""
    focus_cte = "" if focus is None else f""",
    focus_codes AS (SELECT bu.u FROM buying_users bu WHERE bu.user_key IN (SELECT user_key FROM {focus}))"""
    return f"""buying_users AS (
      SELECT user_key, ROW_NUMBER() OVER (ORDER BY user_key) AS u
      FROM (SELECT DISTINCT user_key FROM past WHERE is_buy = 1) x),
    bought_items AS (
      SELECT item_id, ROW_NUMBER() OVER (ORDER BY item_id) AS i
      FROM (SELECT DISTINCT item_id FROM past WHERE is_buy = 1) x),
    coded AS (
      SELECT bu.u, bi.i, p.day, p.event_time, pow(0.5, p.age_days / {KNN_HALF_LIFE_DAYS}) AS w
      FROM past p JOIN buying_users bu ON bu.user_key = p.user_key JOIN bought_items bi ON bi.item_id = p.item_id
      WHERE p.is_buy = 1){focus_cte}"""


def _cooc_ctes(d: Dialect, at: pd.Timestamp, focused: bool = False) -> str:
    """CTEs ending in `cooc` (user_key, user_cooc_items, user_cooc_scores): the items that go with
    the user's purchases. sim(i -> j) = baskets (user-days) holding both / baskets holding i, over
    the lookback's purchases; each item keeps its `COOC_NEIGHBOURS` best j; a user's score for j is
    the sum of sim(i -> j) over the distinct items i they bought; the `TOP_COOC` best. Ties go to the
    more popular item: distinct buyers in the 30 days up to the last purchase, then purchase events
    there, then distinct buyers over the whole lookback, then id (`PopularityRecommender`'s order).
    Scores are ranked rounded to 1e-9, so sums two engines add in different orders rank the same.
    `focused`: only the `focus_codes` users' lists, so only their items' neighbours are needed."""
    history = "SELECT DISTINCT u, i FROM coded" + (" WHERE u IN (SELECT u FROM focus_codes)" if focused else "")
    pairs_from = "baskets a" if not focused else \
        "(SELECT * FROM baskets WHERE i IN (SELECT DISTINCT i FROM coded WHERE u IN (SELECT u FROM focus_codes))) a"
    return f"""pop AS (
      SELECT i, ROW_NUMBER() OVER (ORDER BY buyers DESC, events DESC, all_buyers DESC, i ASC) AS pop_rank
      FROM (SELECT c.i,
                   COUNT(DISTINCT CASE WHEN c.event_time > l.t - INTERVAL 30 DAYS THEN c.u END) AS buyers,
                   SUM(CASE WHEN c.event_time > l.t - INTERVAL 30 DAYS THEN 1 ELSE 0 END) AS events,
                   COUNT(DISTINCT c.u) AS all_buyers
            FROM coded c CROSS JOIN (SELECT MAX(event_time) AS t FROM coded) l GROUP BY c.i) counted),
    baskets AS (SELECT DISTINCT u, day, i FROM coded),
    in_baskets AS (SELECT i, COUNT(*) AS n FROM baskets GROUP BY i),
    cooc_pairs AS (
      SELECT a.i, b.i AS j, COUNT(*) AS n
      FROM {pairs_from} JOIN baskets b ON a.u = b.u AND a.day = b.day AND a.i <> b.i
      GROUP BY a.i, b.i),
    cooc_sim AS (
      SELECT i, j, sim FROM (
        SELECT t.i, t.j, t.n / CAST(k.n AS DOUBLE) AS sim,
               ROW_NUMBER() OVER (PARTITION BY t.i ORDER BY t.n DESC, p.pop_rank ASC) AS pos
        FROM cooc_pairs t JOIN in_baskets k ON k.i = t.i JOIN pop p ON p.i = t.j) ranked_pairs
      WHERE pos <= {COOC_NEIGHBOURS}),
    -- grouped on one BIGINT (user code x 2^32 + item code; both codes are row numbers) rather than
    -- on the two columns: the lists' largest aggregation hashes one integer instead of two
    cooc_scores AS (
      SELECT {d.int_div('k', str(_PACK))} AS u, k % {_PACK} AS j, score FROM (
        SELECT h.u * {_PACK} + s.j AS k, SUM(s.sim) AS score
        FROM ({history}) h JOIN cooc_sim s ON s.i = h.i
        GROUP BY h.u * {_PACK} + s.j) packed),
    {top_n_ctes(d, "cooc_ranked", "cooc_scores", "u", "j", "score", TOP_COOC,
               tie="p.pop_rank", join="JOIN pop p ON p.i = t.j")},
    cooc AS (
      SELECT bu.user_key, {d.ordered_list('bi.item_id', 'r.pos')} AS user_cooc_items,
             {d.ordered_list('r.score', 'r.pos')} AS user_cooc_scores
      FROM cooc_ranked r JOIN buying_users bu ON bu.u = r.u JOIN bought_items bi ON bi.i = r.j
      GROUP BY bu.user_key)"""


def _knn_ctes(d: Dialect, at: pd.Timestamp, item_buyers: int | None, neighbours: int = KNN_NEIGHBOURS,
              focused: bool = False) -> str:
    """CTEs ending in `knn` (user_key, user_knn_items, user_knn_scores): what the most similar
    shoppers bought and the user has not. A shopper is the unit vector of their purchases, each
    line decayed by its age (half-life `KNN_HALF_LIFE_DAYS`); similarity is the cosine; each user
    keeps the `neighbours` most similar; an item scores the sum of similarity x the neighbour's
    weight for it. Ties: neighbours by pseudonym, items by id, after rounding to 1e-9.

    `item_buyers` makes it approximate and linear in the data: a pair of shoppers is counted
    through an item only if the second is among the item's `item_buyers` heaviest buyers, so a
    popular item adds at most that many pairs per buyer instead of its buyers squared. None: exact.
    `focused`: only the `focus_codes` users' lists (their neighbours are still anyone)."""
    mine = "" if not focused else " WHERE u IN (SELECT u FROM focus_codes)"
    askers = "knn_unit a" if not focused else f"(SELECT * FROM knn_unit{mine}) a"
    capped = "knn_unit" if item_buyers is None else f"""(
      SELECT u, i, w FROM (
        SELECT u, i, w, ROW_NUMBER() OVER (PARTITION BY i ORDER BY ROUND(w, 9) DESC, u ASC) AS heaviest
        FROM knn_unit) ranked_buyers WHERE heaviest <= {int(item_buyers)})"""
    return f"""knn_lines AS (SELECT u, i, SUM(w) AS w FROM coded GROUP BY u, i),
    knn_unit AS (
      SELECT l.u, l.i, l.w / GREATEST(sqrt(n.sq), 1e-12) AS w
      FROM knn_lines l JOIN (SELECT u, SUM(w * w) AS sq FROM knn_lines GROUP BY u) n ON n.u = l.u),
    knn_pairs AS (
      SELECT a.u, b.u AS v, SUM(a.w * b.w) AS sim
      FROM {askers} JOIN {capped} b ON a.i = b.i AND a.u <> b.u
      GROUP BY a.u, b.u),
    {top_n_ctes(d, "knn_near", "knn_pairs", "u", "v", "sim", neighbours)},
    knn_scored AS (
      -- the user's own items enter with -1e9, so their sums are negative and drop out: no anti-join
      SELECT u, i, SUM(part) AS score FROM (
        SELECT n.u, x.i, n.sim * x.w AS part FROM knn_near n JOIN knn_unit x ON x.u = n.v
        UNION ALL SELECT u, i, CAST(-1e9 AS DOUBLE) AS part FROM knn_lines{mine}) contributions
      GROUP BY u, i HAVING SUM(part) > 0),
    {top_n_ctes(d, "knn_ranked", "knn_scored", "u", "i", "score", TOP_KNN)},
    knn AS (
      SELECT bu.user_key, {d.ordered_list('bi.item_id', 'r.pos')} AS user_knn_items,
             {d.ordered_list('r.score', 'r.pos')} AS user_knn_scores
      FROM knn_ranked r JOIN buying_users bu ON bu.u = r.u JOIN bought_items bi ON bi.i = r.i
      GROUP BY bu.user_key)"""


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


def table_query(name: str, d: Dialect, at: pd.Timestamp, knn_cap: int | None = KNN_ITEM_BUYERS) -> str:
    """The SQL of table `name` at `at` (the user table with the kNN cap given)."""
    return user_stats(d, at, knn_cap) if name == "user_stats" else QUERIES[name](d, at)


def stamped(sql: str, d: Dialect, at: pd.Timestamp) -> str:
    """The query's rows with their snapshot time as `event_timestamp`, the column Feast joins on
    (its CTEs stay at the top, where DuckDB's engine runs them one by one)."""
    ctes, select = split_ctes(sql)
    return with_ctes(ctes, f"SELECT q.*, {d.timestamp(at)} AS event_timestamp FROM ({select}) q")
