"""What each arm's shoppers did: the served lists of an experiment joined with the events that came back.

Impressions and clicks carry the `request_id` of the answer that showed the item, so they join that
answer's arm directly. Purchases carry no request id. A purchase counts for the arm of the shopper
who made it when that shopper was exposed to the experiment in the `attribution_hours` before it.
For an interleaved list, a purchase goes to the team that placed the item in the shopper's latest
list showing it within that window.

Everything is summed per shopper (the unit the arm is assigned to): `stats.ratio` needs per-unit sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoprank.evaluation.experiments.interleaving import credit

UNIT_COLUMNS = ("requests", "impressions", "clicks", "purchases", "revenue", "no_click_requests")


@dataclass(frozen=True)
class ArmOutcome:
    """One arm's per-shopper sums (`units`, a frame indexed by shopper) and its request-level guardrails."""

    arm: str
    units: pd.DataFrame
    requests: int
    empty_rate: float
    fallback_rate: float
    p99_latency_ms: float

    def totals(self) -> dict[str, float]:
        sums = {c: float(self.units[c].sum()) for c in UNIT_COLUMNS}
        return {"units": len(self.units), **sums,
                "ctr": sums["clicks"] / sums["impressions"] if sums["impressions"] else float("nan"),
                "purchases_per_request": sums["purchases"] / sums["requests"] if sums["requests"] else float("nan"),
                "revenue_per_request": sums["revenue"] / sums["requests"] if sums["requests"] else float("nan"),
                "no_click_share": sums["no_click_requests"] / sums["requests"] if sums["requests"] else float("nan"),
                "empty_rate": self.empty_rate, "fallback_rate": self.fallback_rate,
                "p99_latency_ms": self.p99_latency_ms}


def experiment_requests(requests: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The served lists of one experiment with a shopper (anonymous lists are never in one)."""
    if requests.empty or "experiment" not in requests:
        return requests.iloc[0:0]
    return requests[(requests["experiment"] == experiment) & requests["user_id"].notna()]


def arm_outcomes(requests: pd.DataFrame, events: pd.DataFrame, arms: list[str],
                 attribution_hours: float) -> dict[str, ArmOutcome]:
    """Per arm: each exposed shopper's requests, impressions, clicks, attributed purchases and revenue."""
    window = pd.Timedelta(hours=attribution_hours)
    lists = requests[["request_id", "user_id", "arm", "served_at"]]
    feedback = events[events["request_id"].isin(set(lists["request_id"]))]
    shown = feedback[feedback["event_type"] == "impression"].groupby("request_id").size()
    clicked = feedback[feedback["event_type"] == "click"].groupby("request_id").size()
    per_request = lists.assign(impressions=lists["request_id"].map(shown).fillna(0),
                               clicks=lists["request_id"].map(clicked).fillna(0))
    per_request["no_click_requests"] = (per_request["clicks"] == 0).astype(float)
    bought = _attributed_purchases(lists, events, window)
    out: dict[str, ArmOutcome] = {}
    for arm in arms:
        mine = per_request[per_request["arm"] == arm]
        units = mine.groupby("user_id").agg(requests=("request_id", "size"), impressions=("impressions", "sum"),
                                            clicks=("clicks", "sum"), no_click_requests=("no_click_requests", "sum"))
        buys = bought[bought["arm"] == arm].groupby("user_id").agg(purchases=("quantity", "size"),
                                                                  revenue=("revenue", "sum"))
        units = units.join(buys, how="left").fillna({"purchases": 0.0, "revenue": 0.0})
        served = requests[requests["arm"] == arm]
        out[arm] = ArmOutcome(arm, units[list(UNIT_COLUMNS)].astype(float), len(served),
                              _share(served, "items", lambda v: v is None or len(v) == 0),
                              _share(served, "fallback", lambda v: isinstance(v, str) and bool(v)),
                              float(np.nanpercentile(served["latency_ms"].astype(float), 99))
                              if "latency_ms" in served and served["latency_ms"].notna().any() else float("nan"))
    return out


def _share(frame: pd.DataFrame, column: str, test) -> float:
    if frame.empty or column not in frame:
        return 0.0
    return float(np.mean([bool(test(v)) for v in frame[column]]))


def _attributed_purchases(lists: pd.DataFrame, events: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Purchases (user_id, arm, quantity, revenue) made within `window` after one of the shopper's exposures."""
    buys = events[(events["event_type"] == "purchase") & events["user_id"].isin(set(lists["user_id"]))]
    if buys.empty or lists.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype=str), "arm": pd.Series(dtype=str),
                             "quantity": pd.Series(dtype=float), "revenue": pd.Series(dtype=float)})
    buys = buys.assign(quantity=buys["quantity"].fillna(1).astype(float), price=buys["price"].fillna(0.0))
    buys = buys.assign(revenue=buys["quantity"] * buys["price"]).sort_values("event_time")
    exposures = lists[["user_id", "served_at", "arm"]].sort_values("served_at")
    joined = pd.merge_asof(buys, exposures, left_on="event_time", right_on="served_at", by="user_id",
                           direction="backward", tolerance=window)
    return joined[joined["arm"].notna()][["user_id", "arm", "quantity", "revenue"]]


CREDIT_COLUMNS = ("clicks_a", "clicks_b", "purchases_a", "purchases_b",
                  "click_wins_a", "click_wins_b", "purchase_wins_a", "purchase_wins_b")


def interleaving_credits(requests: pd.DataFrame, events: pd.DataFrame, attribution_hours: float) -> pd.DataFrame:
    """Per shopper of the interleaved lists: the clicks and purchases credited to team a and team b,
    and the lists each team won (more credit than the other in that list: the classic team-draft
    outcome, which a heavy buyer cannot swing more than once per list)."""
    window = pd.Timedelta(hours=attribution_hours)
    lists = requests[requests["teams"].notna()] if "teams" in requests else requests.iloc[0:0]
    if lists.empty:
        return pd.DataFrame(columns=list(CREDIT_COLUMNS), dtype=float)
    clicks = events[(events["event_type"] == "click") & events["request_id"].isin(set(lists["request_id"]))]
    positions = clicks.groupby("request_id")["position"].agg(list)
    credited = [credit(list(t), positions.get(r, [])) for r, t in zip(lists["request_id"], lists["teams"], strict=True)]
    per_list = pd.DataFrame({"request_id": lists["request_id"].to_numpy(), "user_id": lists["user_id"].to_numpy(),
                             "clicks_a": [c[0] for c in credited], "clicks_b": [c[1] for c in credited]})
    shown = lists[["request_id", "user_id", "served_at", "items", "teams"]].explode(["items", "teams"])
    shown = shown.rename(columns={"items": "item_id", "teams": "team"}).dropna(subset=["item_id"])
    buys = events[(events["event_type"] == "purchase") & events["user_id"].isin(set(lists["user_id"]))]
    matched = buys[["user_id", "item_id", "event_time"]].reset_index(names="purchase").merge(
        shown, on=["user_id", "item_id"])
    matched = matched[(matched["served_at"] <= matched["event_time"])
                      & (matched["event_time"] - matched["served_at"] <= window)]
    latest = matched.sort_values("served_at").groupby("purchase").tail(1)
    for team in ("a", "b"):
        bought = latest[latest["team"] == team].groupby("request_id").size()
        per_list[f"purchases_{team}"] = per_list["request_id"].map(bought).fillna(0).astype(float)
    for kind in ("clicks", "purchases"):
        single = kind.removesuffix("s")
        per_list[f"{single}_wins_a"] = (per_list[f"{kind}_a"] > per_list[f"{kind}_b"]).astype(float)
        per_list[f"{single}_wins_b"] = (per_list[f"{kind}_b"] > per_list[f"{kind}_a"]).astype(float)
    return per_list.groupby("user_id")[list(CREDIT_COLUMNS)].sum().astype(float)
