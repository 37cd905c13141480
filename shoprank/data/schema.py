"""The canonical data contract, defined once.

Every source adapter maps its raw format onto these Arrow schemas; validation, features and
training read only canonical data, so a new source never touches anything downstream.
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd
import pyarrow as pa


class EventType(StrEnum):
    """What a user did. `search` events carry a query and no item."""

    VIEW = "view"
    CART = "cart"
    PURCHASE = "purchase"
    SEARCH = "search"


EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)

EVENTS = pa.schema(
    [
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),  # null for search events
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("price", pa.float64()),  # unit price paid or shown
        pa.field("quantity", pa.int64()),
        pa.field("session_id", pa.string()),
        pa.field("query", pa.string()),  # search text, null otherwise
    ]
)

ITEMS = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("title", pa.string()),
    ]
)

USERS = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("age_group", pa.string()),
        pa.field("region", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {"events": EVENTS, "items": ITEMS, "users": USERS}


def conform(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast a frame to a canonical schema, in column order, failing loudly on a missing column.

    Adapters build frames loosely; this is the single point where the contract is enforced.
    """
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise ValueError(f"frame lacks canonical column(s) {missing}; has {list(df.columns)}")
    return pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)


def empty(schema: pa.Schema) -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes."""
    return schema.empty_table().to_pandas()
