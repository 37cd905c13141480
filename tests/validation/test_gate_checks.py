"""Every check of the gate on a small canonical batch: the verdict AND what the report says."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests.validation.conftest import END, START, finding, severities


def test_clean_batch_passes_with_only_notes(make_batch, gate):
    result = gate(make_batch())
    assert result.passed, result.summary
    assert severities(result) == {}
    assert result.summary.startswith("validation gate PASSED")
    assert result.counts == {"events": 6_000, "items": 200, "users": 300}
    # first run: nothing accepted yet, so volume and drift are skipped with a note
    assert "skipped: no accepted batch" in finding(result, "events.volume").observed
    assert finding(result, "events.drift.*").severity == "info"


def test_missing_required_field_fails_with_file_and_row(make_batch, gate):
    def edit(events, items, users):
        events.loc[events.index[[5, 17, 3001]], "user_id"] = None
        return events, items, users

    result = gate(make_batch(edit))
    assert not result.passed
    f = finding(result, "events.user_id.not_null")
    assert (f.severity, f.table, f.expectation) == ("fail", "events", "expect_column_values_to_not_be_null")
    assert f.expected == "user_id is set for every row"
    assert f.observed == "3 of 6,000 rows (0.05%) have no user_id"
    assert f.samples[0].startswith("events/date=2024-01-01/part-0.parquet row 5: user_id=null event_time=2024-01-01")
    assert "FAIL  events events.user_id.not_null  [expect_column_values_to_not_be_null]" in result.summary
    assert "The batch was NOT accepted" in result.summary


def test_price_glitch_fails_and_quotes_the_prices(make_batch, gate):
    def edit(events, items, users):
        rows = events.index[events["price"].notna()][::40]  # 2.5% of priced events
        events.loc[rows, "price"] = -events.loc[rows, "price"]
        events.loc[rows[:3], "price"] = 0.0
        return events, items, users

    result = gate(make_batch(edit))
    f = finding(result, "events.price.positive")
    assert f.severity == "fail"
    assert f.expected == "price > 0 (or no price) for at least 99.5% of rows"
    assert "rows (2.5%) have price <= 0; e.g. 0.0" in f.observed
    assert len(f.samples) == 5 and all("price=" in s and "parquet row" in s for s in f.samples)
    negative = finding(result, "events.price.not_negative")
    assert negative.expected == "price >= 0 (or no price) for every row"
    assert "have a negative price; e.g. -" in negative.observed


def test_a_single_negative_price_fails(make_batch, gate):
    def edit(events, items, users):
        events.loc[events.index[events["price"].notna()][7], "price"] = -1.0
        return events, items, users

    result = gate(make_batch(edit))
    assert severities(result) == {"events.price.not_negative": "fail"}
    assert finding(result, "events.price.positive").severity == "info"  # 1 row is within its tolerance


def test_few_bad_prices_are_tolerated_and_reported(make_batch, gate):
    def edit(events, items, users):
        events.loc[events.index[events["price"].notna()][:2], "price"] = 0.0
        return events, items, users

    result = gate(make_batch(edit))
    assert result.passed
    f = finding(result, "events.price.positive")
    assert f.severity == "info" and f.observed.endswith("have price <= 0; e.g. 0.0 (within tolerance)")


def test_event_type_outside_the_value_set(make_batch, gate):
    def edit(events, items, users):
        events.loc[events.index[:4], "event_type"] = "clicked"
        return events, items, users

    f = finding(gate(make_batch(edit)), "events.event_type.in_set")
    assert f.severity == "fail"
    assert f.expected == "event_type is one of view, cart, purchase, search for every row"
    assert f.observed == "4 of 6,000 rows (0.067%) have another event_type; e.g. clicked"


def test_quantity_and_item_of_non_search_events(make_batch, gate):
    def edit(events, items, users):
        views = events.index[events["event_type"] == "view"]
        events.loc[views[:10], "quantity"] = 0
        events.loc[views[10:20], "item_id"] = None
        return events, items, users

    result = gate(make_batch(edit))
    assert severities(result) == {"events.quantity.positive": "fail", "events.item_id.not_null": "fail"}
    assert "are non-search events without an item_id" in finding(result, "events.item_id.not_null").observed


def test_times_outside_the_interval_and_in_the_future(make_batch, gate):
    def edit(events, items, users):
        events.loc[events.index[:3], "event_time"] = pd.Timestamp("2023-12-31 23:00", tz="UTC")
        return events, items, users

    f = finding(gate(make_batch(edit)), "events.event_time.in_interval")
    assert f.observed.startswith("3 of 6,000 rows (0.05%) are outside the data interval; e.g. 2023-12-31 23:00:00")
    # the same clean batch, judged at a `now` inside the week: the later days are in the future
    result = gate(make_batch(name="clean"), now=pd.Timestamp("2024-01-06", tz="UTC"))
    f = finding(result, "events.event_time.not_future")
    assert f.severity == "fail" and "are in the future" in f.observed and not result.passed


def test_duplicated_event_batch_fails_naming_both_files(make_batch, gate):
    batch = make_batch()
    day = batch / "events" / "date=2024-01-03"
    (day / "part-1.parquet").write_bytes((day / "part-0.parquet").read_bytes())  # the day was loaded twice
    result = gate(batch)
    f = finding(result, "events.duplicates")
    n = pq.read_metadata(day / "part-0.parquet").num_rows
    assert f.severity == "fail"
    assert f.observed == f"{n:,} of {6_000 + n:,} events ({100 * n / (6_000 + n):.0f}%) are repeats"
    assert f.samples[0] == ("events/date=2024-01-03/part-1.parquet row 0 repeats "
                            "events/date=2024-01-03/part-0.parquet row 0")


def test_catalogue_mismatch_unknown_items_users_and_duplicate_keys(make_batch, gate):
    def edit(events, items, users):
        popular = events["item_id"].value_counts().index[0]
        items = pd.concat([items[items["item_id"] != popular], items.iloc[[3]]])  # one gone, one twice
        users = users[users["user_id"] != events["user_id"].value_counts().index[-1]]  # a rare user
        return events, items, users

    result = gate(make_batch(edit))
    assert severities(result) == {"events.item_id.known": "fail", "items.item_id.unique": "fail"}
    item = finding(result, "events.item_id.known")
    assert "refer to items missing from the items table (200 rows)" in item.observed
    assert item.samples[0].startswith("events/date=2024-01-0")
    assert finding(result, "items.item_id.unique").samples[0].startswith("items/part-0.parquet row 3: item_id=i")
    # one user's events are a tiny share: reported, tolerated (mostly 0.99)
    assert finding(result, "events.user_id.known").severity == "info"


def test_empty_catalogue_makes_every_item_unknown(make_batch, gate):
    result = gate(make_batch(lambda e, i, u: (e, i.iloc[:0], u)))
    f = finding(result, "events.item_id.known")
    assert f.severity == "fail" and "(100%) refer to items missing from the items table (0 rows)" in f.observed


def test_wrong_column_type_and_missing_column(make_batch, gate, tmp_path):
    batch = make_batch()
    path = batch / "events" / "date=2024-01-02" / "part-0.parquet"
    table = pq.read_table(path)
    rows = table.num_rows
    table = table.set_column(table.schema.get_field_index("price"), "price", pc_cast_str(table["price"]))
    pq.write_table(table.drop(["session_id"]), path)
    result = gate(batch)
    f = finding(result, "events.columns")
    assert f.severity == "fail" and f.observed == "1 file(s) break the contract"
    assert f.samples == (
        f"events/date=2024-01-02/part-0.parquet: column price: wrong column type, expected double, found string "
        f"({rows:,} rows not checked further)",
        f"events/date=2024-01-02/part-0.parquet: column session_id: missing column, expected a string column, "
        f"found no such column ({rows:,} rows not checked further)",
    )
    assert result.counts["events"] == 6_000 - rows


def pc_cast_str(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(pa.string())


def test_empty_batch_fails(make_batch, gate):
    batch = make_batch(lambda e, i, u: (e.iloc[:0], i, u))
    result = gate(batch)
    assert finding(result, "events.not_empty").observed == "0 events"
    assert not result.passed


def test_catalogue_checks_on_items(make_batch, gate):
    def edit(events, items, users):
        items.loc[items.index[:30], "brand"] = None  # 15% without brand: a warning
        items.loc[items.index[:3], "price"] = -1.0  # 1.5%: more than the 1% tolerated
        items.loc[items.index[1:4], "category"] = None
        return events, items, users

    result = gate(make_batch(edit))
    assert severities(result) == {"items.brand.not_null": "warn", "items.price.positive": "fail",
                                  "items.price.not_negative": "fail", "items.category.not_null": "fail"}
    assert finding(result, "items.brand.not_null").observed == "30 of 200 rows (15%) have no brand"


def test_source_without_brands_is_a_note_not_a_warning(make_batch, gate):
    result = gate(make_batch(lambda e, i, u: (e, i.assign(brand=None), u)))
    assert result.passed and severities(result) == {}
    assert "the source does not provide brands" in finding(result, "items.brand.not_null").observed


def test_mostly_is_judged_on_the_whole_batch_not_per_chunk(make_batch, gate, tmp_path):
    """20 bad prices, all in the first 500 rows: 4% of that chunk, 0.35% of the batch (limit 0.5%)."""
    def edit(events, items, users):
        priced = events.index[events["price"].notna()]
        events.loc[priced[:20], "price"] = 0.0
        return events, items, users

    config = tmp_path / "small-chunks.toml"
    config.write_text("[run]\nchunk_rows = 500\n")
    batch = make_batch(edit)
    small = gate(batch, config_path=config)
    large = gate(batch)
    assert small.passed and large.passed
    assert finding(small, "events.price.positive").observed == finding(large, "events.price.positive").observed


def test_interval_is_optional(make_batch, gate):
    result = gate(make_batch(), interval_start=None, interval_end=None)
    assert result.passed
    assert not [f for f in result.findings if f.check == "events.event_time.in_interval"]
    assert "interval: not given" in result.summary


def test_volume_against_the_accepted_history(make_batch, gate, next_week):
    gate.accept(gate(make_batch(name="week1")))

    def outage(events, items, users):
        day = events["event_time"].dt.strftime("%Y-%m-%d")
        keep = (day != "2024-01-10") | (np.arange(len(events)) % 20 == 0)  # 5% of one day survives
        spike = events[day == "2024-01-12"]
        return pd.concat([events[keep]] + [spike.assign(session_id=spike["session_id"] + f"-{k}")
                                           for k in range(11)]), items, users

    result = gate(make_batch(outage, base=next_week, name="week2"), interval_start=pd.Timestamp("2024-01-08"),
                  interval_end=pd.Timestamp("2024-01-15"))
    f = finding(result, "events.volume")
    assert f.severity == "fail" and f.expectation == "expect_table_row_count_to_be_between"
    assert f.expected.startswith("each day between 0.1x and 10x (exclusive) the usual ")
    assert f.expected.endswith("events (median of 7 accepted days before 2024-01-08)")
    assert f.observed == "2 of 7 day(s) outside"
    low, high = (float(re.search(r"\((\S+)x the usual\)", s).group(1)) for s in f.samples)
    assert f.samples[0].startswith("2024-01-10: ") and low < 0.1
    assert f.samples[1].startswith("2024-01-12: ") and high >= 10


def test_a_missing_day_is_zero_events(make_batch, gate, next_week):
    gate.accept(gate(make_batch(name="week1")))
    batch = make_batch(base=next_week, name="week2")
    shutil.rmtree(batch / "events" / "date=2024-01-11")
    result = gate(batch, interval_start=pd.Timestamp("2024-01-08"), interval_end=pd.Timestamp("2024-01-15"))
    assert finding(result, "events.volume").samples == ("2024-01-11: 0 events (0x the usual)",)


def test_drift_against_the_last_accepted_batch(make_batch, gate, next_week):
    gate.accept(gate(make_batch(name="week1")))
    week2 = {"interval_start": pd.Timestamp("2024-01-08"), "interval_end": pd.Timestamp("2024-01-15")}
    same = gate(make_batch(base=next_week, name="same"), **week2)
    assert same.passed and severities(same) == {}
    assert "drift PSI vs last accepted batch: category_mix" in same.summary

    def shifted(events, items, users):
        events = events.copy()
        top = items["item_id"].iloc[:20].tolist()  # the catalogue is sorted by category
        has_item = events["item_id"].notna()
        events.loc[has_item, "item_id"] = np.array(top)[np.arange(has_item.sum()) % 20]
        events["price"] = events["price"] * 100  # cents instead of units
        return events, items, users

    result = gate(make_batch(shifted, base=next_week, name="shifted"), **week2)
    assert severities(result) == {"events.drift.category_mix": "warn", "events.drift.price": "fail"}
    price = finding(result, "events.drift.price")
    assert price.expectation == "expect_column_kl_divergence_to_be_less_than"
    assert price.expected.startswith("PSI <= 1 against the batch accepted ")
    assert "price p10/p50/p90" in price.observed and "largest shifts: decile" in price.observed
    assert "largest shifts:" in finding(result, "events.drift.category_mix").observed


def test_interval_bounds_are_utc(make_batch, gate):
    result = gate(make_batch(), interval_start="2024-01-01", interval_end="2024-01-08")
    assert result.interval == (START, END)
