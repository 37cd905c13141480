"""What one API replica knows of the catalogue, kept fresh: the night's artifacts and the day's feeds.

Two speeds. The night's artifacts (the catalogue, each item's similar and bought-together items) are
large and change once a night: they are reloaded when the item table is (`follow`, on a new
materialisation). The day's feeds (stock and prices, items added since the night, the rule set) are
small and change any minute: `refresh` polls them, every `poll_s` in the background, and swaps each
in whole when its version changed. A feed or rule set that cannot be read leaves the previous one
serving and says why (`errors`, on the health page); so does an artifact that cannot be read.

Everything a request needs is then a dictionary lookup: `catalogue()` is the decision stage's view
(category, price, stock), `describe()` the fields a front end asked for, `new_items()` today's items.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from shoprank.layout import (
    AVAILABILITY_KEY,
    CATALOGUE_KEY,
    INTRADAY_ITEMS_KEY,
    ITEM_NEIGHBOURS_KEY,
    RULES_KEY,
    SIMILAR_ITEMS_KEY,
)
from shoprank.search.text import tokens
from shoprank.serving.decision.published import LiveRules
from shoprank.serving.decision.rules import RuleSet
from shoprank.serving.decision.stage import Catalogue
from shoprank.storage import ObjectStore

__all__ = ["DESCRIBABLE", "LiveCatalogue", "NewItem"]

DESCRIBABLE = ("title", "price", "brand", "category", "in_stock")  # what `fields=` may ask for


@dataclass(frozen=True)
class NewItem:
    """An item added during the day that tonight's catalogue does not hold yet."""

    item_id: str
    category: str | None
    brand: str | None
    price: float | None
    title: str | None
    added_at: float
    words: frozenset[str] = frozenset()  # its title, category and brand as search tokenises them


class _Overlay(Mapping):
    """One field of every item: the day's value where there is one, else the night's."""

    def __init__(self, night: Mapping[str, object], day: Mapping[str, object]) -> None:
        self.night, self.day = night, day

    def __getitem__(self, item: str):
        if item in self.day:
            return self.day[item]
        return self.night[item]

    def get(self, item, default=None):
        value = self.day.get(item, _MISSING)
        return self.night.get(item, default) if value is _MISSING else value

    def __contains__(self, item) -> bool:
        return item in self.day or item in self.night

    def __iter__(self) -> Iterator[str]:
        yield from self.night
        yield from (i for i in self.day if i not in self.night)

    def __len__(self) -> int:
        return len(self.night) + sum(1 for i in self.day if i not in self.night)


_MISSING = object()


@dataclass
class _Night:
    fields: dict[str, dict[str, object]] = field(default_factory=lambda: {f: {} for f in ("category", "brand",
                                                                                         "price", "title")})
    similar: dict[str, list[str]] = field(default_factory=dict)
    bought_together: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Day:
    items: dict[str, dict] = field(default_factory=dict)  # intraday items by id
    availability: dict[str, dict] = field(default_factory=dict)
    catalogue: Catalogue | None = None  # built once per change, shared by every request
    new: list[NewItem] = field(default_factory=list)
    fields: dict[str, dict[str, object]] = field(default_factory=dict)  # the day's category, brand, title


def category_repeat_rates(table: object) -> dict[str, float]:
    """Per category, the share of (shopper, item) pairs bought more than once, weighted by each item's
    buyers: from the item table's `item_repeat_rate` and `item_buyers_30d` (the nightly features), so
    "does this category repeat" is learned from the shop, not set by hand. Empty for a table without
    them."""
    names = list(getattr(table, "numeric_names", ()))
    strings = getattr(table, "strings", {})
    if "item_repeat_rate" not in names or "item_category" not in strings:
        return {}
    numeric = table.numeric[:-1]  # type: ignore[attr-defined] - the last row stands for unknown items
    rate = np.nan_to_num(numeric[:, names.index("item_repeat_rate")])
    weight = np.nan_to_num(numeric[:, names.index("item_buyers_30d")]) if "item_buyers_30d" in names \
        else np.ones(len(rate))
    frame = pd.DataFrame({"category": strings["item_category"][:-1], "rated": rate * weight, "weight": weight})
    sums = frame.groupby("category").sum()
    sums = sums[sums["weight"] > 0]
    return (sums["rated"] / sums["weight"]).to_dict()


def _lists(store: ObjectStore, key: str, column: str) -> dict[str, list[str]]:
    if not store.exists(key):
        return {}
    table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["item_id", column])
    return dict(zip(table.column(0).to_pylist(), (v or [] for v in table.column(1).to_pylist()), strict=True))


class LiveCatalogue:
    def __init__(self, store: ObjectStore, log: Callable[[str], None] = print, poll_s: float = 2.0) -> None:
        self.store, self.log, self.poll_s = store, log, poll_s
        self.live_rules = LiveRules(store, RULES_KEY)
        self.preview: RuleSet | None = None  # a rule set tried in this process only (`shoprank rules preview`)
        self._night = _Night()
        self._day = _Day()
        self._tokens: dict[str, str | None] = {AVAILABILITY_KEY: None, INTRADAY_ITEMS_KEY: None}
        self._followed: object | None = None
        self.repeat_rate: dict[str, float] = {}  # per category: how often a bought item is bought again
        self._words: dict[str, frozenset[str]] = {}
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._install(self._night, {}, {})

    # ---- loading ---------------------------------------------------------------------------
    def load_night(self) -> None:
        """The night's artifacts, whole; one that cannot be read keeps what was loaded."""
        night = _Night(similar=self._night.similar, bought_together=self._night.bought_together,
                       fields=self._night.fields)
        try:
            if self.store.exists(CATALOGUE_KEY):
                table = pq.read_table(io.BytesIO(self.store.get_bytes(CATALOGUE_KEY)))
                ids = table.column("item_id").to_pylist()
                night.fields = {f: dict(zip(ids, table.column(f).to_pylist(), strict=True))
                                for f in ("category", "brand", "price", "title")}
            night.similar = _lists(self.store, SIMILAR_ITEMS_KEY, "similar")
            night.bought_together = _lists(self.store, ITEM_NEIGHBOURS_KEY, "neighbours")
            self.errors.pop("night", None)
        except Exception as err:  # noqa: BLE001 - a broken artifact must not take the answers down
            self.errors["night"] = f"night's catalogue artifacts unreadable, serving the previous: {err}"
            self.log(f"online API: {self.errors['night']}")
            return
        self._night = night
        self._install(night, self._day.items, self._day.availability)

    def follow(self, materialisation: object) -> None:
        """A new materialisation (the item table reloaded) comes with new night artifacts, and new
        repeat rates per category (from the item table's own features)."""
        if materialisation is not None and materialisation is not self._followed:
            self._followed = materialisation
            self.repeat_rate = category_repeat_rates(materialisation)
            self.load_night()

    def refresh(self) -> bool:
        """Poll the day's feeds and the rule set; True if anything served changed."""
        changed = False
        feeds = {AVAILABILITY_KEY: self._day.availability, INTRADAY_ITEMS_KEY: self._day.items}
        for key in (AVAILABILITY_KEY, INTRADAY_ITEMS_KEY):
            try:
                current = self.store.read_versioned(key)
                token = current[1] if current else None
                if token == self._tokens[key]:
                    continue
                entries = json.loads(current[0])["items"] if current else {}
                if not isinstance(entries, dict):
                    raise ValueError("`items` is not an object")
            except Exception as err:  # noqa: BLE001 - keep serving the previous feed
                self.errors[key] = (f"{self.store.uri(key)} unreadable, serving the previous: "
                                    f"{type(err).__name__}: {err}")
                continue
            self._tokens[key] = token
            self.errors.pop(key, None)
            feeds[key] = entries
            changed = True
        try:
            changed |= self.live_rules.refresh()
            if self.live_rules.last_error:
                self.errors[RULES_KEY] = self.live_rules.last_error
            else:
                self.errors.pop(RULES_KEY, None)
        except Exception as err:  # noqa: BLE001 - the store is down: the rules in hand keep serving
            self.errors[RULES_KEY] = f"rule set unreadable, serving the previous: {type(err).__name__}: {err}"
        if changed:
            self._install(self._night, feeds[INTRADAY_ITEMS_KEY], feeds[AVAILABILITY_KEY])
        return changed

    def start(self) -> LiveCatalogue:
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                self.refresh()

        threading.Thread(target=loop, name="catalogue-refresh", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _install(self, night: _Night, items: dict[str, dict], availability: dict[str, dict]) -> None:
        """Build what requests read from the night and the day's feeds, and swap it in whole (a
        request reads one `_Day`, never a half-built one)."""
        day_field = {f: {i: e.get(f) for i, e in items.items()} for f in ("category", "brand", "title")}
        prices = {i: e.get("price") for i, e in items.items()}
        prices.update({i: e["price"] for i, e in availability.items() if "price" in e})
        out = frozenset(i for i, e in availability.items() if e.get("in_stock") is False)
        catalogue = Catalogue(_Overlay(night.fields["category"], day_field["category"]),
                              _Overlay(night.fields["price"], prices), out)
        known = night.fields["category"]
        new = sorted((NewItem(i, e.get("category"), e.get("brand"), e.get("price"), e.get("title"),
                              float(e.get("added_at") or 0.0),
                              frozenset(tokens(" ".join(str(e.get(f) or "") for f in ("title", "category", "brand")))))
                      for i, e in items.items() if i not in known),
                     key=lambda n: (-n.added_at, n.item_id))
        self._day = _Day(items, availability, catalogue, new, day_field)
        self._words = {}  # titles may have changed

    # ---- what requests read ----------------------------------------------------------------
    @property
    def rules(self) -> RuleSet:
        return self.preview or self.live_rules.rules

    def catalogue(self) -> Catalogue:
        return self._day.catalogue  # type: ignore[return-value]

    def knows(self, item: str) -> bool:
        return item in self._night.fields["category"] or item in self._day.items

    def new_items(self) -> list[NewItem]:
        """Today's items tonight's catalogue does not hold, newest first."""
        return self._day.new

    def similar(self, item: str) -> list[str]:
        return self._night.similar.get(item, [])

    def bought_together(self, item: str) -> list[str]:
        return self._night.bought_together.get(item, [])

    @property
    def neighbours(self) -> Mapping[str, list[str]]:
        return self._night.bought_together

    def title_words(self, item: str) -> frozenset[str]:
        """An item's title as search tokenises it, cached (a request asks for a shopper's 20 items)."""
        words = self._words.get(item)
        if words is None:
            if len(self._words) > 200_000:  # bounded: a long-lived replica sees every item eventually
                self._words.clear()
            words = self._words[item] = frozenset(tokens(str(self.describe(item, ("title",))["title"] or "")))
        return words

    def describe(self, item: str, wanted: tuple[str, ...]) -> dict[str, object]:
        """The catalogue fields a front end asked for (`DESCRIBABLE`), None where unknown."""
        day = self._day
        catalogue = day.catalogue
        out: dict[str, object] = {}
        for name in wanted:
            if name == "in_stock":
                out[name] = catalogue.available(item)  # type: ignore[union-attr]
            elif name == "price":
                out[name] = catalogue.price.get(item)  # type: ignore[union-attr]
            elif name == "category":
                out[name] = catalogue.category.get(item)  # type: ignore[union-attr]
            else:
                values = day.fields[name]
                out[name] = values[item] if item in values else self._night.fields[name].get(item)
        return out
