"""The ranker's session inputs: how a candidate relates to what the shopper did in the last 30 minutes.

One definition (`session_inputs`) for both sides. Online, the recommender hands it the live session
that the event intake pushed into Feast (`features/session.py`); offline, the training set hands it
the same window cut point-in-time from the logged events before each example's time
(`session_inputs_offline`): only views and carts strictly before the example and at most
`SESSION_WINDOW` old, newest `MAX_SESSION_ITEMS` per kind, as the pushed row keeps them. A model
trained on these values therefore reads the same values online.

Three inputs, all in [0, 1] and all 0 without a session (a nightly cut-off at midnight, a shopper
new to the site), so a ranker trained on them still ranks a session-less user as before:
- `sess_viewed`: the candidate was viewed (or clicked) in the session;
- `sess_carted`: it was put in the cart;
- `sess_cat_share`: the share of the session's items that are in the candidate's category (what the
  shopper is browsing right now, which a 30-day category profile reacts to only the next night).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

SESSION_WINDOW = timedelta(minutes=30)
MAX_SESSION_ITEMS = 20  # per kind (viewed, carted), the newest: what the pushed session row keeps
SESSION_INPUTS = ("sess_viewed", "sess_carted", "sess_cat_share")
SESSION_EVENT_TYPES = {"view": "viewed", "cart": "carted"}  # canonical event type -> session list

Columns = dict[str, np.ndarray]


def session_inputs(viewed: Sequence[str], carted: Sequence[str], item_ids: Sequence[str],
                   categories: Sequence[object], category_of: Mapping[str, object]) -> Columns:
    """The session inputs of candidates `item_ids` (their categories alongside), given the session's
    viewed and carted items; `category_of` maps a session item to its category (None: unknown)."""
    n = len(item_ids)
    seen, cart = set(viewed), set(carted)
    items = list(dict.fromkeys([*carted, *viewed]))
    counts = Counter(c for c in (category_of.get(i) for i in items) if c is not None)
    total = len(items)
    return {
        "sess_viewed": np.fromiter((i in seen for i in item_ids), dtype="float64", count=n),
        "sess_carted": np.fromiter((i in cart for i in item_ids), dtype="float64", count=n),
        "sess_cat_share": np.fromiter((counts.get(c, 0) / total if total and c is not None else 0.0
                                       for c in categories), dtype="float64", count=n),
    }


def item_categories(items: pd.DataFrame) -> dict[str, object]:
    """item_id -> item_category from item rows (the newest row of an item wins)."""
    if "item_category" not in items:
        return {}
    last = items.drop_duplicates("item_id", keep="last")
    return dict(zip(last["item_id"].astype(str), last["item_category"], strict=True))


def no_session(n: int) -> Columns:
    return {name: np.zeros(n) for name in SESSION_INPUTS}


def _ns(times: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch, whatever the column's unit and zone (naive reads as UTC)."""
    stamps = pd.to_datetime(times, utc=True)
    return stamps.dt.as_unit("ns").astype("int64").to_numpy()


WINDOW_NS = int(SESSION_WINDOW.total_seconds() * 1e9)


def _windows(examples: pd.DataFrame, interactions: pd.DataFrame) -> pd.DataFrame:
    """(user_key, event_timestamp, item_id, kind, event_time): each example group's session events.

    Events are first cut to those that lie in some example's window (sorted search over the distinct
    example times), so the join below never pairs a user's whole history with every cut-off."""
    acts = interactions.loc[interactions["event_type"].isin(list(SESSION_EVENT_TYPES)),
                            ["user_key", "item_id", "event_type", "event_time"]]
    groups = examples[["user_key", "event_timestamp"]].drop_duplicates()
    if acts.empty or groups.empty:
        return pd.DataFrame(columns=["user_key", "event_timestamp", "item_id", "kind", "event_time"])
    times = np.unique(_ns(groups["event_timestamp"]))
    event_times = _ns(acts["event_time"])
    after = np.searchsorted(times, event_times, side="right")
    near = after < len(times)
    near[near] = (times[after[near]] - event_times[near]) <= WINDOW_NS
    acts = acts[near & acts["user_key"].isin(set(groups["user_key"])).to_numpy()]
    joined = groups.merge(acts, on="user_key")
    at, t = _ns(joined["event_timestamp"]), _ns(joined["event_time"])
    joined = joined[(t < at) & (t >= at - WINDOW_NS)]
    return joined.assign(kind=joined["event_type"].map(SESSION_EVENT_TYPES)).drop(columns="event_type")


def session_inputs_offline(examples: pd.DataFrame, interactions: pd.DataFrame,
                           category_of: Mapping[str, object]) -> Columns:
    """The session inputs of every example row (user_key, item_id, item_category, event_timestamp),
    point-in-time from the pseudonymised interactions, aligned with the rows of `examples`."""
    n = len(examples)
    out = no_session(n)
    sessions = _windows(examples, interactions)
    if sessions.empty:
        return out
    sessions = sessions.sort_values("event_time", ascending=False)
    lists: dict[tuple, dict[str, list[str]]] = {}
    for (user, at, kind), frame in sessions.groupby(["user_key", "event_timestamp", "kind"], sort=False):
        newest = list(dict.fromkeys(frame["item_id"].tolist()))[:MAX_SESSION_ITEMS]
        lists.setdefault((user, at), {"viewed": [], "carted": []})[kind] = newest
    categories = examples["item_category"] if "item_category" in examples else pd.Series([None] * n)
    positions = examples.groupby(["user_key", "event_timestamp"], sort=False).indices
    for key, session in lists.items():
        rows = positions.get(key)
        if rows is None:
            continue
        values = session_inputs(session["viewed"], session["carted"], examples["item_id"].to_numpy()[rows],
                                categories.to_numpy()[rows], category_of)
        for name in SESSION_INPUTS:
            out[name][rows] = values[name]
    return out


def add_session_inputs(examples: pd.DataFrame, interactions: pd.DataFrame,
                       category_of: Mapping[str, object]) -> pd.DataFrame:
    """`examples` with the session input columns (see `session_inputs_offline`)."""
    values = session_inputs_offline(examples.reset_index(drop=True), interactions, category_of)
    return examples.assign(**{name: values[name] for name in SESSION_INPUTS})
