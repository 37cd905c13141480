"""The shop's search log as the private zone hands it on: each query with what its session did next,
and query text scrubbed of personal data (emails, phone numbers, long digit runs).

Both run at the zone boundary (`shoprank.features.pseudonymise`) before anything crosses, and the
search package builds on them (`search.queries` labels, `search.text.query_tokens`), so they live in
the data layer that both sit above.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pandas as pd

# ---- personal data in query text -------------------------------------------------------------
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# +country (area) groups: at least 7 digits in groups separated by space, dot, dash or parentheses
PHONE = re.compile(r"(?<!\w)\+?\(?\d[\d\s().-]{5,}\d(?!\w)")
LONG_DIGITS = 8  # a run of this many digits (separators allowed) is an ID, card or phone number
EMAIL_TOKEN, PHONE_TOKEN, NUMBER_TOKEN = "[email]", "[phone]", "[number]"


def _phone_or_number(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    if digits >= LONG_DIGITS:
        separated = any(not c.isdigit() for c in match.group(0).strip())
        return PHONE_TOKEN if separated or match.group(0).startswith("+") else NUMBER_TOKEN
    return match.group(0)


def scrub(text: str | None) -> str:
    """The query with emails, phone numbers and digit runs of `LONG_DIGITS`+ digits replaced by
    placeholders. Short numbers stay: sizes, models and years ("iphone 15", "2001", a 6-digit
    category code) are what shoppers search for. Full-width digits are folded first (NFKC), so
    "１３８００１３８０００" is caught like its ASCII twin."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", str(text))
    folded = EMAIL.sub(EMAIL_TOKEN, folded)
    return PHONE.sub(_phone_or_number, folded)


RELEVANCE = {"purchase": 3, "cart": 2, "view": 1}
QUERY_COLUMNS = ["query_id", "event_time", "query", "item_id", "relevance"]
# the event columns `session_queries` reads
SEARCH_LOG_COLUMNS = ["session_id", "user_id", "event_time", "event_type", "query", "item_id"]


def query_ids(*columns: pd.Series) -> pd.Series:
    joined = columns[0].astype(str)
    for col in columns[1:]:
        joined = joined + "\x1f" + col.astype(str)
    return joined.map(lambda s: hashlib.blake2b(s.encode(), digest_size=8).hexdigest())


def session_queries(events: pd.DataFrame, user_col: str = "user_id") -> pd.DataFrame:
    """Each search event with the items its session interacted with after it (before the next search)."""
    if "session_id" not in events or "query" not in events:
        return pd.DataFrame(columns=[user_col, *QUERY_COLUMNS])
    frame = events[events["session_id"].notna()].sort_values(["session_id", "event_time"], kind="stable")
    is_search = (frame["event_type"] == "search") & frame["query"].notna()
    # the search each later event belongs to: the last search before it in its session
    search_no = is_search.astype(int).groupby(frame["session_id"]).cumsum()
    frame = frame.assign(_search=search_no)
    searches = frame[is_search][["session_id", "_search", user_col, "event_time", "query"]]
    acts = frame[(~is_search) & frame["item_id"].notna() & (frame["_search"] > 0)
                 & frame["event_type"].isin(list(RELEVANCE))]
    acts = acts.assign(relevance=acts["event_type"].map(RELEVANCE))
    acts = acts.groupby(["session_id", "_search", "item_id"], as_index=False)["relevance"].max()
    out = searches.merge(acts, on=["session_id", "_search"], how="inner")
    out["query_id"] = query_ids(out["session_id"], out["_search"])
    return out[[user_col, *QUERY_COLUMNS]].reset_index(drop=True)
