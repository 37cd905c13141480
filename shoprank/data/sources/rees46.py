"""REES46 multi-category store events (views, carts, purchases) from its public CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import pandas as pd

from shoprank.data.schema import EVENTS, ITEMS, USERS

RAW_COLUMNS = [
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
    "user_id", "user_session",
]


class Rees46Source:
    """Reads the CSV in chunks. The category is the readable `category_code` when present,
    else the numeric `category_id`; the title is built from category and brand so search has text."""

    name = "rees46"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _raw_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        yield from pd.read_csv(self.path, dtype=str, chunksize=chunk_rows, keep_default_na=False)

    @staticmethod
    def _to_events(raw: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "event_time": pd.to_datetime(raw["event_time"], format="%Y-%m-%d %H:%M:%S UTC", utc=True),
                "user_id": raw["user_id"],
                "item_id": raw["product_id"],
                "event_type": raw["event_type"],
                "price": pd.to_numeric(raw["price"]),
                "quantity": 1,
                "session_id": raw["user_session"].replace("", None),
                "query": None,
            }
        )[EVENTS.names]

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        for raw in self._raw_chunks(chunk_rows):
            yield self._to_events(raw)

    @cached_property
    def _catalogue_and_people(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        frames = list(self._raw_chunks(500_000))
        raw = pd.concat(frames) if frames else pd.DataFrame(columns=RAW_COLUMNS)
        raw = raw.drop_duplicates("product_id", keep="last")
        category = raw["category_code"].where(raw["category_code"] != "", raw["category_id"])
        brand = raw["brand"].replace("", None)
        title = (raw["category_code"].str.replace(".", " ", regex=False) + " " + raw["brand"]).str.strip()
        items = pd.DataFrame(
            {
                "item_id": raw["product_id"],
                "category": category,
                "brand": brand,
                "price": pd.to_numeric(raw["price"]),
                "title": title.replace("", None),
            }
        )
        users = pd.DataFrame({"user_id": pd.concat(frames)["user_id"].unique() if frames else []})
        users["age_group"] = None
        users["region"] = None
        return (
            items[ITEMS.names].sort_values("item_id").reset_index(drop=True),
            users[USERS.names].sort_values("user_id").reset_index(drop=True),
        )

    def items(self) -> pd.DataFrame:
        return self._catalogue_and_people[0]

    def users(self) -> pd.DataFrame:
        return self._catalogue_and_people[1]
