"""A merchandiser's rule set, as data: parsed and checked whole before it may serve.

Why data and not code: rules change during the day (a campaign starts, an item sells out) and must
take effect without a deploy or a night, and a bad edit must never reach a shopper. So a rule set
is a TOML document (a file, or an object under the store), parsed here into frozen dataclasses;
any error names the source, the rule and the field with what was expected, and the caller keeps
serving the set it had. Nothing here applies the rules (`stage.py` does).

    version = "2026-11-11.1"
    substitute_out_of_stock = true       # an out-of-stock item's place goes to its nearest similar
    new_item_slots = 2                   # at most this many of today's new items per answer

    [filters]
    exclude_items = ["A1"]
    exclude_categories = ["tobacco"]
    price = [0.0, 500.0]                 # the served band, inclusive

    [diversity]
    per_category = 3                     # at most 3 of a category ...
    top_k = 10                           # ... in the first 10

    [suppression]
    impressions = 5                      # shown 5 times in 7 days without a click: drops down
    days = 7
    bought_repeat_below = 0.1            # optional: what the shopper bought is left out where its
                                         # category's repeat rate is below this (learned nightly)

    [[boost]]
    name = "double-11"
    categories = ["snacks"]              # and/or items = [...]
    factor = 1.5
    start = 2026-11-01T00:00:00Z
    end = 2026-11-12T00:00:00Z

    [[pin]]
    name = "hero"
    item = "B7"
    position = 1                         # 1-based
    start = 2026-11-11T00:00:00Z
    end = 2026-11-12T00:00:00Z
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Boost", "Diversity", "Filters", "Pin", "RuleSet", "RulesError", "Suppression", "Window", "parse_rules"]


class RulesError(ValueError):
    """A rule set that cannot serve: the message names the source, the rule and the field."""


@dataclass(frozen=True)
class Window:
    """When a rule is in force: start <= now < end; an open side is unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    def active(self, now: datetime) -> bool:
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


@dataclass(frozen=True)
class Filters:
    exclude_items: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True)
class Boost:
    name: str
    factor: float
    items: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    window: Window = Window()


@dataclass(frozen=True)
class Pin:
    name: str
    item: str
    position: int  # 1-based
    window: Window = Window()


@dataclass(frozen=True)
class Diversity:
    per_category: int
    top_k: int


@dataclass(frozen=True)
class Suppression:
    impressions: int
    days: int
    bought_repeat_below: float = 0.0  # 0: bought items are never left out


@dataclass(frozen=True)
class RuleSet:
    version: str = "none"
    filters: Filters = Filters()
    boosts: tuple[Boost, ...] = ()
    pins: tuple[Pin, ...] = ()
    diversity: Diversity | None = None
    suppression: Suppression | None = None
    substitute_out_of_stock: bool = False
    new_item_slots: int = 0
    source: str = field(default="(built in)", compare=False)


_TOP_KEYS = {"version", "substitute_out_of_stock", "new_item_slots", "filters", "diversity", "suppression",
             "boost", "pin"}


class _Reader:
    """Reads one table of the document, naming the rule and field in every error."""

    def __init__(self, source: str, rule: str, table: Any, allowed: set[str]) -> None:
        self.source, self.rule = source, rule
        if not isinstance(table, dict):
            self.fail(None, "a table", table)
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise RulesError(f"{source}: rule {rule!r}: unknown field {unknown[0]!r} (expected one of "
                             f"{', '.join(sorted(allowed))})")
        self.table = table

    def fail(self, name: str | None, expected: str, got: Any) -> None:
        where = f"rule {self.rule!r}" + (f", field {name!r}" if name else "")
        raise RulesError(f"{self.source}: {where}: expected {expected}, got {got!r}")

    def has(self, name: str) -> bool:
        return name in self.table

    def text(self, name: str, default: str | None = None) -> str:
        value = self.table.get(name, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(name, "a non-empty string", value)
        return value

    def whole(self, name: str, minimum: int, default: int | None = None) -> int:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(name, f"an integer >= {minimum}", value)
        return value

    def number(self, name: str, positive: bool = False) -> float:
        value = self.table.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or (positive and value <= 0):
            self.fail(name, "a positive number" if positive else "a finite number", value)
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.table.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, "true or false", value)
        return value

    def ids(self, name: str) -> frozenset[str]:
        value = self.table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(name, "a list of non-empty strings", value)
        return frozenset(value)

    def window(self) -> Window:
        bounds = {}
        for name in ("start", "end"):
            value = self.table.get(name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                self.fail(name, "a TOML date-time with its offset (2026-11-11T00:00:00Z)", value)
            bounds[name] = value
        if bounds["start"] and bounds["end"] and bounds["end"] <= bounds["start"]:
            self.fail("end", f"a time after start {bounds['start'].isoformat()}", bounds["end"].isoformat())
        return Window(**bounds)


def _filters(source: str, table: Any) -> Filters:
    read = _Reader(source, "filters", table, {"exclude_items", "exclude_categories", "price"})
    low = high = None
    if read.has("price"):
        band = read.table["price"]
        if (not isinstance(band, list) or len(band) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in band)
                or band[0] < 0 or band[1] < band[0]):
            read.fail("price", "[low, high] with 0 <= low <= high", band)
        low, high = float(band[0]), float(band[1])
    return Filters(read.ids("exclude_items"), read.ids("exclude_categories"), low, high)


def _boost(source: str, number: int, table: Any) -> Boost:
    name = table.get("name") if isinstance(table, dict) else None
    read = _Reader(source, name if isinstance(name, str) and name else f"boost #{number + 1}", table,
                   {"name", "items", "categories", "factor", "start", "end"})
    boost = Boost(read.text("name"), read.number("factor", positive=True), read.ids("items"),
                  read.ids("categories"), read.window())
    if not boost.items and not boost.categories:
        read.fail("items", "items or categories to boost", [])
    return boost


def _pin(source: str, number: int, table: Any) -> Pin:
    name = table.get("name") if isinstance(table, dict) else None
    read = _Reader(source, name if isinstance(name, str) and name else f"pin #{number + 1}", table,
                   {"name", "item", "position", "start", "end"})
    return Pin(read.text("name"), read.text("item"), read.whole("position", 1), read.window())


def _list_of_tables(source: str, document: dict, key: str) -> list:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise RulesError(f"{source}: {key!r}: expected an array of tables ([[{key}]]), got {value!r}")
    return value


def parse_rules(text: str | dict, source: str) -> RuleSet:
    """The rule set in `text` (TOML, or its parsed document); `source` names it in every error."""
    if isinstance(text, dict):
        document = text
    else:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise RulesError(f"{source}: not valid TOML: {err}") from err
    top = _Reader(source, "(top level)", document, _TOP_KEYS)
    boosts = tuple(_boost(source, n, t) for n, t in enumerate(_list_of_tables(source, document, "boost")))
    pins = tuple(_pin(source, n, t) for n, t in enumerate(_list_of_tables(source, document, "pin")))
    for names, kind in (([b.name for b in boosts], "boost"), ([p.name for p in pins], "pin")):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise RulesError(f"{source}: rule {duplicated[0]!r}: two {kind} rules have this name")
    diversity = suppression = None
    if "diversity" in document:
        read = _Reader(source, "diversity", document["diversity"], {"per_category", "top_k"})
        diversity = Diversity(read.whole("per_category", 1), read.whole("top_k", 1))
    if "suppression" in document:
        read = _Reader(source, "suppression", document["suppression"], {"impressions", "days", "bought_repeat_below"})
        below = read.number("bought_repeat_below") if read.has("bought_repeat_below") else 0.0
        if not 0.0 <= below <= 1.0:
            read.fail("bought_repeat_below", "a share between 0 and 1", below)
        suppression = Suppression(read.whole("impressions", 1), read.whole("days", 1), below)
    return RuleSet(version=top.text("version"),
                   filters=_filters(source, document["filters"]) if "filters" in document else Filters(),
                   boosts=boosts, pins=pins, diversity=diversity, suppression=suppression,
                   substitute_out_of_stock=top.flag("substitute_out_of_stock", False),
                   new_item_slots=top.whole("new_item_slots", 0, default=0), source=source)
