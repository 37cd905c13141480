"""The catalogue's changes during the day: stock and prices, and items added or changed.

Why not wait for the night: an item that sells out at 11:00 must stop being recommended at 11:00,
and an item launched at noon must be findable and recommendable at noon. Both feeds (the admin API's
`PUT /catalogue/availability` and `PUT /catalogue/items`, and `shoprank catalogue ...` for a file)
write one JSON object each under the store's merchandising prefix; every API replica polls them
(`LiveCatalogue`) and applies them within seconds.

A batch is checked whole before anything is written, and refused whole with every broken row named
(source, row, field, what was expected): a half-applied stock feed would serve some of a sold-out
campaign and not the rest. Writes merge into what is stored with a compare-and-swap, so two feeds
arriving at once both land.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from shoprank.data.schema import ITEMS
from shoprank.layout import AVAILABILITY_KEY, INTRADAY_ITEMS_KEY
from shoprank.storage import ObjectStore

__all__ = ["FeedError", "FeedResult", "put_availability", "put_items", "read_feed"]

MAX_ROWS = 10_000  # rows per batch: a full catalogue goes through the nightly, not this door
MAX_ID_CHARS = 200
_TEXT_FIELDS = {"category": 200, "brand": 200, "title": 500}
_MERGE_TRIES = 8


class FeedError(ValueError):
    """A batch that was refused whole; `errors` names each broken row and field."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        shown = "; ".join(self.errors[:10]) + (f"; and {len(self.errors) - 10} more" if len(self.errors) > 10 else "")
        super().__init__(f"{source}: refused, nothing was applied: {shown}")


@dataclass(frozen=True)
class FeedResult:
    applied: int  # rows written
    total: int  # entries the feed holds now


def read_feed(store: ObjectStore, key: str) -> tuple[dict[str, dict], str | None]:
    """The stored entries by item id, and the version token (None: nothing stored yet)."""
    current = store.read_versioned(key)
    if current is None:
        return {}, None
    return json.loads(current[0])["items"], current[1]


def _merge(store: ObjectStore, key: str, change: Callable[[dict[str, dict]], dict[str, dict]]) -> FeedResult:
    for _ in range(_MERGE_TRIES):
        entries, token = read_feed(store, key)
        changed = change(entries)
        merged = {**entries, **changed}
        if store.put_if(key, json.dumps({"items": merged}, ensure_ascii=False, separators=(",", ":")).encode(),
                        token) is not None:
            return FeedResult(len(changed), len(merged))
    raise RuntimeError(f"{store.uri(key)}: changed under {_MERGE_TRIES} tries in a row; nothing was applied, retry")


def _where(source: str, row: int, item: object) -> str:
    return f"{source} row {row + 1}" + (f" (item_id={item!r})" if isinstance(item, str) and item else "")


def _check_id(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        return f"field item_id: expected a non-blank string of at most {MAX_ID_CHARS} characters, got {value!r:.60}"
    return None


def _check_price(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return f"field price: expected a finite number >= 0 or null, got {value!r:.60}"
    return None


def _rows(rows: object, source: str) -> list:
    if not isinstance(rows, list) or not rows:
        raise FeedError(source, [f"expected a non-empty JSON array of rows, got {type(rows).__name__}"])
    if len(rows) > MAX_ROWS:
        raise FeedError(source, [f"{len(rows):,} rows: at most {MAX_ROWS:,} a batch"])
    return rows


def _refuse_bad_rows(rows: list, source: str, problems_of: Callable[[dict], Sequence[str | None]]) -> None:
    """Check every row (`problems_of`: what is wrong with one, None where nothing) and refuse the
    batch naming each broken row, or return when all pass."""
    errors: list[str] = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(f"{_where(source, n, None)}: expected an object, got {type(row).__name__}")
            continue
        errors.extend(f"{_where(source, n, row.get('item_id'))}: {p}" for p in problems_of(row) if p)
    if errors:
        raise FeedError(source, errors)


def _unknown_fields(row: dict, names: Sequence[str]) -> str | None:
    extra = sorted(set(row) - set(names))
    return f"fields {extra}: not known ({', '.join(names)})" if extra else None


def put_availability(store: ObjectStore, rows: object, source: str,
                     known: Callable[[str], bool] | None = None) -> FeedResult:
    """Stock and price per item: rows `{"item_id": str, "in_stock": bool, "price": number | null}`
    (`price` optional: left as it was when absent). `known`: whether an item is in the catalogue;
    an unknown item is refused (a stock row for an item nobody can see is a feed error)."""
    rows = _rows(rows, source)
    seen: set[str] = set()

    def problems(row: dict) -> list[str | None]:
        item = row.get("item_id")
        named = isinstance(item, str) and bool(item.strip())
        found = [_check_id(item),
                 None if isinstance(row.get("in_stock"), bool) else
                 f"field in_stock: expected true or false, got {row.get('in_stock')!r:.60}",
                 _check_price(row.get("price")), _unknown_fields(row, ("item_id", "in_stock", "price")),
                 f"field item_id: {item!r} is given twice" if named and item in seen else None,
                 f"field item_id: {item!r} is not in the catalogue" if named and known is not None
                 and not known(item) else None]
        if named:
            seen.add(item)
        return found

    _refuse_bad_rows(rows, source, problems)
    clean = {row["item_id"]: {"in_stock": row["in_stock"], **({"price": row["price"]} if "price" in row else {})}
             for row in rows}

    def change(entries: dict[str, dict]) -> dict[str, dict]:
        return {item: {**entries.get(item, {}), **entry} for item, entry in clean.items()}

    return _merge(store, AVAILABILITY_KEY, change)


def put_items(store: ObjectStore, rows: object, source: str, now_s: float,
              check: Callable[[pd.DataFrame, str], list[str]] | None = None) -> FeedResult:
    """Items added or changed: rows with the catalogue's fields (`item_id`, `category`, `brand`,
    `price`, `title`). `check`: the gate's catalogue checks (`validation.catalogue_checks`), run on
    the batch once its shape is right. An item keeps the time it was first added."""
    rows = _rows(rows, source)
    _refuse_bad_rows(rows, source, lambda row: [
        _check_id(row.get("item_id")), _unknown_fields(row, ITEMS.names), _check_price(row.get("price")),
        *(f"field {f}: expected a string of at most {limit} characters or null, got {row.get(f)!r:.60}"
          for f, limit in _TEXT_FIELDS.items()
          if row.get(f) is not None and (not isinstance(row.get(f), str) or len(row[f]) > limit))])
    frame = pd.DataFrame([{name: row.get(name) for name in ITEMS.names} for row in rows])
    if check is not None:
        found = check(frame, source)
        if found:
            raise FeedError(source, found)

    def change(entries: dict[str, dict]) -> dict[str, dict]:
        return {row["item_id"]: {**{k: row.get(k) for k in ITEMS.names if k != "item_id"},
                                 "added_at": entries.get(row["item_id"], {}).get("added_at", now_s),
                                 "changed_at": now_s} for row in rows}

    return _merge(store, INTRADAY_ITEMS_KEY, change)
