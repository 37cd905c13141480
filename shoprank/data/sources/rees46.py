"""REES46 multi-category store events (views, carts, purchases) from its public CSV export.

Parsing is strict (see shoprank.data.errors). The public sample ends with a line cut off mid-row:
the reader drops that one line and records an `InputIssue` (`truncated_last_line`), which the
validation gate reports as a warning; a ragged row anywhere else makes the file unreadable.
Each events frame is indexed by the source line number (header = line 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import pandas as pd

from shoprank.data.errors import InputIssue, parse_datetimes, parse_numbers, read_csv_checked, source_label
from shoprank.data.schema import EVENTS, ITEMS, USERS

RAW_COLUMNS = [
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
    "user_id", "user_session",
]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


class Rees46Source:
    """Reads the CSV in chunks. The category is the readable `category_code` when present,
    else the numeric `category_id`; the title is built from category and brand so search has text.

    `issues` collects what the reader recovered from, plus how many catalogue entries lack a
    readable category_code (the canonical items cannot show it: their category falls back to the
    numeric id), for the validation gate. Missing brands are visible in the canonical items.
    """

    name = "rees46"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.issues: list[InputIssue] = []

    @cached_property
    def _label(self) -> str:
        return source_label(self.path)

    def _raw_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        yield from read_csv_checked(self.path, RAW_COLUMNS, chunk_rows=chunk_rows, issues=self.issues)

    def _prices(self, raw: pd.DataFrame) -> pd.Series:
        return parse_numbers(raw["price"], file=self._label, field="price").astype("float64")

    def _to_events(self, raw: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "event_time": parse_datetimes(raw["event_time"], TIME_FORMAT, file=self._label, field="event_time",
                                              expected="a time as YYYY-MM-DD HH:MM:SS UTC"),
                "user_id": raw["user_id"].replace("", None),
                "item_id": raw["product_id"].replace("", None),
                "event_type": raw["event_type"].replace("", None),
                "price": self._prices(raw),
                "quantity": 1,
                "session_id": raw["user_session"].replace("", None),
                "query": None,
            },
            index=raw.index,
        )[EVENTS.names]

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        """Canonical events; each frame's index is the source line number."""
        for raw in self._raw_chunks(chunk_rows):
            yield self._to_events(raw)

    @cached_property
    def _catalogue_and_people(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One streaming pass: the last row of each product describes it; users are the distinct ids."""
        item_parts, user_parts = [], []
        for raw in self._raw_chunks(500_000):
            raw = raw.assign(price=self._prices(raw))
            item_parts.append(raw.drop_duplicates("product_id", keep="last")[
                ["product_id", "category_id", "category_code", "brand", "price"]])
            user_parts.append(pd.Series(raw["user_id"].unique()))
        columns = ["product_id", "category_id", "category_code", "brand", "price"]
        raw = pd.concat(item_parts) if item_parts else pd.DataFrame(columns=columns)
        raw = raw.drop_duplicates("product_id", keep="last")
        category = raw["category_code"].where(raw["category_code"] != "", raw["category_id"])
        brand = raw["brand"].replace("", None)
        title = (raw["category_code"].str.replace(".", " ", regex=False) + " " + raw["brand"]).str.strip()
        items = pd.DataFrame(
            {
                "item_id": raw["product_id"],
                "category": category,
                "brand": brand,
                "price": raw["price"],
                "title": title.replace("", None),
            }
        )
        self._note_missing(raw, "category_code", "category_code_missing",
                           "the category falls back to the numeric category_id")
        ids = pd.concat(user_parts).unique() if user_parts else []
        users = pd.DataFrame({"user_id": ids})
        users = users[users["user_id"] != ""]
        users["age_group"] = None
        users["region"] = None
        return (
            items[ITEMS.names].sort_values("item_id").reset_index(drop=True),
            users[USERS.names].sort_values("user_id").reset_index(drop=True),
        )

    def _note_missing(self, raw: pd.DataFrame, column: str, check: str, consequence: str) -> None:
        missing, total = int((raw[column] == "").sum()), len(raw)
        if missing:
            issue = InputIssue(check, self._label,
                               f"{column} is empty for {missing:,} of {total:,} items ({missing / total:.1%}); "
                               f"{consequence}", field=column, count=missing, total=total)
            if issue not in self.issues:
                self.issues.append(issue)

    def items(self) -> pd.DataFrame:
        return self._catalogue_and_people[0]

    def users(self) -> pd.DataFrame:
        return self._catalogue_and_people[1]
