"""The expectation suites, one per canonical table, kept as code in this one place.

Each `RowCheck` pairs a Great Expectations expectation with the id of its entry in gate.toml
(which sets severity and `mostly`) and the words the report uses. Row-level checks run in GE,
chunk by chunk; the checks that need the whole batch (duplicates, volume, drift, references
between tables) are computed incrementally by the gate and listed in `BATCH_CHECKS` so this file
stays the single inventory of everything the gate checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from shoprank.data.schema import EVENT_TYPES
from shoprank.validation.config import GateConfig

E = gx.expectations


@dataclass(frozen=True)
class Bounds:
    """What the time checks compare against; fixed per gate run."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None
    latest: pd.Timestamp  # now + tolerated clock skew


@dataclass(frozen=True)
class RowCheck:
    """A row-level expectation. `denominator` says which rows `mostly` is a share of: every row
    the expectation looks at ("element", for not-null checks) or only the non-null ones."""

    id: str
    table: str
    column: str
    expected: str  # e.g. "price > 0"
    violation: str  # e.g. "have price <= 0"
    build: Callable[[Bounds, float, dict], object | None]
    denominator: str = "nonmissing"


def _not_null(column: str, **extra) -> Callable[[Bounds, float, dict], object]:
    return lambda b, mostly, meta: E.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly, meta=meta, **extra)


def _positive(column: str) -> Callable[[Bounds, float, dict], object]:
    return lambda b, mostly, meta: E.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True,
                                                                   mostly=mostly, meta=meta)


def _not_negative(column: str) -> Callable[[Bounds, float, dict], object]:
    return lambda b, mostly, meta: E.ExpectColumnValuesToBeBetween(column=column, min_value=0, mostly=mostly,
                                                                   meta=meta)


def _in_interval(b: Bounds, mostly: float, meta: dict) -> object | None:
    if b.start is None and b.end is None:
        return None
    return E.ExpectColumnValuesToBeBetween(column="event_time", min_value=b.start, max_value=b.end, strict_max=True,
                                           mostly=mostly, meta=meta)


def _not_future(b: Bounds, mostly: float, meta: dict) -> object:
    return E.ExpectColumnValuesToBeBetween(column="event_time", max_value=b.latest, mostly=mostly, meta=meta)


ROW_CHECKS: tuple[RowCheck, ...] = (
    RowCheck("events.event_time.not_null", "events", "event_time", "event_time is set", "have no event_time",
             _not_null("event_time"), "element"),
    RowCheck("events.user_id.not_null", "events", "user_id", "user_id is set", "have no user_id",
             _not_null("user_id"), "element"),
    RowCheck("events.event_type.not_null", "events", "event_type", "event_type is set", "have no event_type",
             _not_null("event_type"), "element"),
    RowCheck("events.item_id.not_null", "events", "item_id", "item_id is set on every non-search event",
             "are non-search events without an item_id",
             _not_null("item_id", row_condition=Column("event_type") != "search"), "element"),
    RowCheck("events.event_type.in_set", "events", "event_type", "event_type is one of " + ", ".join(EVENT_TYPES),
             "have another event_type",
             lambda b, mostly, meta: E.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES),
                                                                   mostly=mostly, meta=meta)),
    RowCheck("events.price.not_negative", "events", "price", "price >= 0 (or no price)", "have a negative price",
             _not_negative("price")),
    RowCheck("events.price.positive", "events", "price", "price > 0 (or no price)", "have price <= 0",
             _positive("price")),
    RowCheck("events.quantity.positive", "events", "quantity", "quantity > 0 (or no quantity)",
             "have quantity <= 0", _positive("quantity")),
    RowCheck("events.event_time.in_interval", "events", "event_time", "event_time inside the data interval",
             "are outside the data interval", _in_interval),
    RowCheck("events.event_time.not_future", "events", "event_time", "event_time not in the future",
             "are in the future", _not_future),
    RowCheck("items.item_id.not_null", "items", "item_id", "item_id is set", "have no item_id",
             _not_null("item_id"), "element"),
    RowCheck("items.item_id.unique", "items", "item_id", "item_id is unique in the catalogue",
             "share their item_id with another row",
             lambda b, mostly, meta: E.ExpectColumnValuesToBeUnique(column="item_id", mostly=mostly, meta=meta)),
    RowCheck("items.category.not_null", "items", "category", "category is set", "have no category",
             _not_null("category"), "element"),
    RowCheck("items.price.not_negative", "items", "price", "price >= 0 (or no price)", "have a negative price",
             _not_negative("price")),
    RowCheck("items.price.positive", "items", "price", "price > 0 (or no price)", "have price <= 0",
             _positive("price")),
    RowCheck("items.brand.not_null", "items", "brand", "brand is set", "have no brand", _not_null("brand"),
             "element"),
    RowCheck("users.user_id.not_null", "users", "user_id", "user_id is set", "have no user_id",
             _not_null("user_id"), "element"),
    RowCheck("users.user_id.unique", "users", "user_id", "user_id is unique", "share their user_id with another row",
             lambda b, mostly, meta: E.ExpectColumnValuesToBeUnique(column="user_id", mostly=mostly, meta=meta)),
)

#: Checks computed by the gate over the whole batch (see shoprank.validation.gate), with the GE
#: expectation type used to show each of them in Data Docs.
BATCH_CHECKS: dict[str, str] = {
    "events.columns": "expect_table_columns_to_match_set",
    "items.columns": "expect_table_columns_to_match_set",
    "users.columns": "expect_table_columns_to_match_set",
    "events.not_empty": "expect_table_row_count_to_be_between",
    "events.item_id.known": "expect_column_values_to_be_in_set",
    "events.user_id.known": "expect_column_values_to_be_in_set",
    "events.duplicates": "expect_compound_columns_to_be_unique",
    "events.volume": "expect_table_row_count_to_be_between",
    "events.drift.category_mix": "expect_column_kl_divergence_to_be_less_than",
    "events.drift.price": "expect_column_kl_divergence_to_be_less_than",
    "events.drift.events_per_user": "expect_column_kl_divergence_to_be_less_than",
    "events.drift.event_type_mix": "expect_column_kl_divergence_to_be_less_than",
    "source.truncated_last_line": "expect_table_row_count_to_equal",
    "source.category_code_missing": "expect_column_values_to_not_be_null",
}


def build_suites(config: GateConfig, bounds: Bounds) -> dict[str, tuple[gx.ExpectationSuite, dict[str, RowCheck]]]:
    """One GE suite per table from ROW_CHECKS, with `mostly` from the configuration.

    Each expectation's meta carries its check id (results are matched back by it) and its
    severity, which Data Docs shows next to the expectation.
    """
    suites: dict[str, tuple[gx.ExpectationSuite, dict[str, RowCheck]]] = {}
    for table in ("events", "items", "users"):
        suite = gx.ExpectationSuite(name=f"shoprank.{table}")
        checks: dict[str, RowCheck] = {}
        for check in ROW_CHECKS:
            if check.table != table:
                continue
            cfg = config.check(check.id)
            if not cfg.enabled:
                continue
            meta = {"check": check.id, "severity": cfg.severity,
                    "notes": {"format": "markdown", "content": [f"**{cfg.severity}** · gate.toml `{check.id}`"]}}
            expectation = check.build(bounds, cfg.mostly if cfg.mostly is not None else 1.0, meta)
            if expectation is None:
                continue
            suite.add_expectation(expectation)  # type: ignore[arg-type]
            checks[check.id] = check
        suites[table] = (suite, checks)
    return suites


def all_check_ids() -> set[str]:
    """Every check id the code knows; gate.toml must configure exactly these (tested)."""
    return {c.id for c in ROW_CHECKS} | set(BATCH_CHECKS)
