"""Ta Feng grocery purchases (Nov 2000 - Feb 2001): every row is one purchased product line."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import pandas as pd

from shoprank.data.fetch import tafeng_zip
from shoprank.data.schema import EVENTS, ITEMS, USERS, EventType

RAW_COLUMNS = [
    "TRANSACTION_DT", "CUSTOMER_ID", "AGE_GROUP", "PIN_CODE", "PRODUCT_SUBCLASS", "PRODUCT_ID",
    "AMOUNT", "ASSET", "SALES_PRICE",
]


class TaFengSource:
    """Reads the zip (or an extracted CSV) in chunks; ids stay strings so leading zeros survive."""

    name = "tafeng"

    def __init__(self, path: str | Path | None = None, cache_dir: Path | None = None) -> None:
        if path is None:
            from shoprank.settings import load_settings

            path = tafeng_zip(cache_dir or load_settings().cache_dir)
        self.path = Path(path)

    def _raw_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        def read(handle) -> Iterator[pd.DataFrame]:
            yield from pd.read_csv(
                handle, dtype=str, chunksize=chunk_rows, encoding="utf-8-sig", keep_default_na=False
            )

        if self.path.suffix == ".zip":
            with zipfile.ZipFile(self.path) as zf:
                member = next(n for n in zf.namelist() if n.endswith(".csv"))
                with zf.open(member) as fh:
                    yield from read(fh)
        else:
            yield from read(self.path)

    @staticmethod
    def _to_events(raw: pd.DataFrame) -> pd.DataFrame:
        times = pd.to_datetime(raw["TRANSACTION_DT"], format="%m/%d/%Y").dt.tz_localize("UTC")
        quantity = pd.to_numeric(raw["AMOUNT"]).astype("int64")
        total = pd.to_numeric(raw["SALES_PRICE"]).astype("float64")
        user = raw["CUSTOMER_ID"].str.strip()
        return pd.DataFrame(
            {
                "event_time": times,
                "user_id": user,
                "item_id": raw["PRODUCT_ID"].str.strip(),
                "event_type": EventType.PURCHASE.value,
                # SALES_PRICE is the line total; the contract wants a unit price.
                "price": total / quantity.where(quantity > 0),
                "quantity": quantity,
                "session_id": user + "@" + raw["TRANSACTION_DT"],  # one basket per customer-day
                "query": None,
            }
        )[EVENTS.names]

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        for raw in self._raw_chunks(chunk_rows):
            yield self._to_events(raw)

    @cached_property
    def _catalogue_and_people(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Ta Feng has no catalogue file: items and users are derived in one pass over the rows."""
        parts_items, parts_users = [], []
        for raw in self._raw_chunks(500_000):
            raw = raw.assign(
                unit=pd.to_numeric(raw["SALES_PRICE"]) / pd.to_numeric(raw["AMOUNT"]).clip(lower=1)
            )
            parts_items.append(raw[["PRODUCT_ID", "PRODUCT_SUBCLASS", "unit"]])
            parts_users.append(raw[["CUSTOMER_ID", "AGE_GROUP", "PIN_CODE"]].drop_duplicates("CUSTOMER_ID"))
        raw_items = pd.concat(parts_items)
        items = (
            raw_items.groupby("PRODUCT_ID", sort=True)
            .agg(category=("PRODUCT_SUBCLASS", "first"), price=("unit", "median"))
            .reset_index()
            .rename(columns={"PRODUCT_ID": "item_id"})
        )
        items["brand"] = None
        items["title"] = None
        users = pd.concat(parts_users).drop_duplicates("CUSTOMER_ID").rename(
            columns={"CUSTOMER_ID": "user_id", "AGE_GROUP": "age_group", "PIN_CODE": "region"}
        )
        users = users.replace({"age_group": {"": None}, "region": {"": None}})
        return items[ITEMS.names], users[USERS.names].sort_values("user_id").reset_index(drop=True)

    def items(self) -> pd.DataFrame:
        return self._catalogue_and_people[0]

    def users(self) -> pd.DataFrame:
        return self._catalogue_and_people[1]
