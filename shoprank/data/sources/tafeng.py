"""Ta Feng grocery purchases (Nov 2000 - Feb 2001): every row is one purchased product line.

Parsing is strict (see shoprank.data.errors): a file that is not the Ta Feng CSV, or a value that
does not parse, raises `InputError` naming the file, line and field. Each events frame is indexed
by the source line number (header = line 1) so validation can point at the offending line.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import pandas as pd

from shoprank.data.errors import InputIssue, parse_datetimes, parse_numbers, read_csv_checked, source_label
from shoprank.data.fetch import tafeng_zip
from shoprank.data.schema import EVENTS, ITEMS, USERS, EventType
from shoprank.settings import load_settings

RAW_COLUMNS = [
    "TRANSACTION_DT", "CUSTOMER_ID", "AGE_GROUP", "PIN_CODE", "PRODUCT_SUBCLASS", "PRODUCT_ID",
    "AMOUNT", "ASSET", "SALES_PRICE",
]
DATE_FORMAT = "%m/%d/%Y"


class TaFengSource:
    """Reads the zip (or an extracted CSV) in chunks; ids stay strings so leading zeros survive.

    `issues` collects what the reader recovered from (a cut-off last line) for the validation gate.
    """

    name = "tafeng"

    def __init__(self, path: str | Path | None = None, cache_dir: Path | None = None) -> None:
        if path is None:

            path = tafeng_zip(cache_dir or load_settings().cache_dir)
        self.path = Path(path)
        self.issues: list[InputIssue] = []

    def _raw_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        yield from read_csv_checked(self.path, RAW_COLUMNS, chunk_rows=chunk_rows, issues=self.issues)

    @staticmethod
    def _parse(raw: pd.DataFrame, label: str) -> tuple[pd.Series, pd.Series, pd.Series]:
        times = parse_datetimes(raw["TRANSACTION_DT"], DATE_FORMAT, file=label, field="TRANSACTION_DT",
                                expected="a date as m/d/yyyy, e.g. 11/1/2000")
        amount = parse_numbers(raw["AMOUNT"], file=label, field="AMOUNT", integer=True)
        quantity = amount.astype("int64") if amount.notna().all() else amount.astype("Int64")
        total = parse_numbers(raw["SALES_PRICE"], file=label, field="SALES_PRICE").astype("float64")
        return times, quantity, total

    @classmethod
    def _to_events(cls, raw: pd.DataFrame, label: str = "ta_feng.csv") -> pd.DataFrame:
        times, quantity, total = cls._parse(raw, label)
        user = raw["CUSTOMER_ID"].str.strip()
        return pd.DataFrame(
            {
                "event_time": times,
                "user_id": user.replace("", None),
                "item_id": raw["PRODUCT_ID"].str.strip().replace("", None),
                "event_type": EventType.PURCHASE.value,
                # SALES_PRICE is the line total; the contract wants a unit price.
                "price": total / quantity.where(quantity > 0).astype("float64"),
                "quantity": quantity,
                "session_id": user + "@" + raw["TRANSACTION_DT"],  # one basket per customer-day
                "query": None,
            },
            index=raw.index,
        )[EVENTS.names]

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
        """Canonical purchase events; each frame's index is the source line number."""
        label = self._source_label
        for raw in self._raw_chunks(chunk_rows):
            yield self._to_events(raw, label)

    @cached_property
    def _source_label(self) -> str:
        return source_label(self.path)

    @cached_property
    def _catalogue_and_people(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Ta Feng has no catalogue file: items and users are derived in one pass over the rows."""
        parts_items, parts_users = [], []
        label = self._source_label
        for raw in self._raw_chunks(500_000):
            _times, quantity, total = self._parse(raw, label)
            raw = raw.assign(unit=total / quantity.astype("float64").clip(lower=1))
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
