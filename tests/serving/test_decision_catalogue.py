"""The live catalogue and its feeds, on a local store and on S3 (moto): a batch applied whole or not at
all, two feeds at once both landing, a broken feed or artifact leaving the previous one serving, new
items matched to shoppers by content and to queries by their words."""

from __future__ import annotations

import io
import json
import threading

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.layout import AVAILABILITY_KEY, CATALOGUE_KEY, INTRADAY_ITEMS_KEY, SIMILAR_ITEMS_KEY
from shoprank.search.similar import similar_items
from shoprank.serving.decision.catalogue_feed import FeedError, put_availability, put_items
from shoprank.serving.decision.live_catalogue import LiveCatalogue
from shoprank.serving.decision.new_items import fitting_new_items, matching_new_items
from shoprank.storage import open_store
from shoprank.validation.catalogue_checks import catalogue_errors

CATALOGUE = pd.DataFrame({"item_id": ["tea1", "tea2", "tea3", "mug1", "hose"],
                          "category": ["tea", "tea", "tea", "kitchen", "garden"],
                          "brand": ["Leaf", "Leaf", "Other", "Leaf", None],
                          "price": [4.0, 4.5, 40.0, 8.0, 20.0],
                          "title": ["green tea leaves", "green tea bags", "rare oolong tea", "tea mug", "garden hose"]})


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    root, endpoint = request.getfixturevalue("s3_bucket")
    return open_store(root, endpoint)


def _night(store) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(CATALOGUE, preserve_index=False), buf)
    store.put_bytes(CATALOGUE_KEY, buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(similar_items(CATALOGUE, {"tea1": ["mug1"]}), preserve_index=False), buf)
    store.put_bytes(SIMILAR_ITEMS_KEY, buf.getvalue())


def test_similar_items_rank_by_text_and_price_and_add_what_is_bought_with():
    similar = dict(zip(*similar_items(CATALOGUE, {"tea1": ["mug1"]}).to_dict("list").values(), strict=True))
    assert similar["tea1"][0] == "tea2"  # same words, same brand, close price
    assert similar["tea1"].index("tea2") < similar["tea1"].index("tea3")
    assert "mug1" in similar["tea1"] and "tea1" not in similar["tea1"]  # co-purchase crosses categories
    assert similar["hose"] == []  # alone in its category and bought with nothing


def test_a_stock_batch_with_a_bad_row_writes_nothing_and_names_every_bad_row(store):
    with pytest.raises(FeedError) as refused:
        put_availability(store, [{"item_id": "tea1", "in_stock": False}, {"item_id": "tea2", "in_stock": 1},
                                 {"item_id": "", "in_stock": True}, {"item_id": "tea1", "in_stock": True}],
                         "stock.json", known=set(CATALOGUE["item_id"]).__contains__)
    text = str(refused.value)
    assert "stock.json row 2" in text and "in_stock" in text and "row 3" in text and "given twice" in text
    assert store.read_versioned(AVAILABILITY_KEY) is None
    with pytest.raises(FeedError, match="non-empty JSON array"):
        put_availability(store, {"item_id": "tea1"}, "stock.json")


def test_two_feeds_at_once_both_land(store):
    barrier = threading.Barrier(2)

    def write(item: str) -> None:
        barrier.wait()
        put_availability(store, [{"item_id": item, "in_stock": False, "price": 1.0}], "stock")

    threads = [threading.Thread(target=write, args=(i,)) for i in ("tea1", "tea2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = json.loads(store.get_bytes(AVAILABILITY_KEY))["items"]
    assert set(stored) == {"tea1", "tea2"}


def test_the_live_catalogue_applies_feeds_and_keeps_the_previous_on_a_broken_one(store):
    _night(store)
    live = LiveCatalogue(store, log=lambda _: None)
    live.load_night()
    assert live.catalogue().available("tea1") and live.describe("tea1", ("title", "price")) == {
        "title": "green tea leaves", "price": 4.0}
    put_availability(store, [{"item_id": "tea1", "in_stock": False, "price": 3.5}], "stock")
    assert live.refresh()
    assert not live.catalogue().available("tea1") and live.catalogue().price.get("tea1") == 3.5
    store.put_bytes(AVAILABILITY_KEY, b"{not json")
    assert not live.refresh()
    assert not live.catalogue().available("tea1") and AVAILABILITY_KEY in live.errors
    put_items(store, [{"item_id": "tea9", "category": "tea", "brand": "Leaf", "price": 5.0,
                       "title": "jasmine green tea"}], "items", now_s=100.0)
    live.refresh()
    assert [n.item_id for n in live.new_items()] == ["tea9"] and live.knows("tea9")
    assert live.catalogue().category.get("tea9") == "tea"


def test_items_changed_during_the_day_keep_when_they_were_first_added(store):
    put_items(store, [{"item_id": "n1", "category": "tea", "price": 5.0}], "items", now_s=100.0)
    put_items(store, [{"item_id": "n1", "category": "tea", "price": 6.0}], "items", now_s=200.0)
    entry = json.loads(store.get_bytes(INTRADAY_ITEMS_KEY))["items"]["n1"]
    assert (entry["added_at"], entry["changed_at"], entry["price"]) == (100.0, 200.0, 6.0)


def test_the_gates_catalogue_checks_refuse_rows_by_number():
    bad = pd.DataFrame({"item_id": ["a", "b"], "category": ["tea", None], "brand": [None, None],
                        "price": [1.0, -1.0], "title": [None, None]})
    errors = " ".join(catalogue_errors(bad, "PUT /catalogue/items"))
    assert "row 2 (category=null)" in errors and "row 2 (price=-1.0)" in errors
    assert catalogue_errors(bad.iloc[:1], "x") == []


def test_new_items_fit_shoppers_by_category_brand_and_price_band(tmp_path):
    store = open_store(str(tmp_path / "s"))
    _night(store)
    put_items(store, [{"item_id": "cheap-tea", "category": "tea", "brand": "Leaf", "price": 5.0,
                       "title": "green tea sampler"},
                      {"item_id": "luxury-tea", "category": "tea", "brand": "Other", "price": 400.0, "title": "tea"},
                      {"item_id": "rake", "category": "garden", "brand": None, "price": 9.0, "title": "garden rake"}],
              "items", now_s=1.0)
    live = LiveCatalogue(store, log=lambda _: None)
    live.load_night()
    live.refresh()
    tea_lover = {"user_top_categories": ["tea"], "user_top_category_shares": [0.9], "user_top_items": ["tea1"],
                 "user_avg_price": 5.0}
    fit = fitting_new_items(live.new_items(), tea_lover, [], lambda i: live.describe(i, ("category", "brand",
                                                                                         "title")), 3)
    assert fit == ["cheap-tea"]  # luxury-tea is far outside their price band; rake is not their kind
    session_only = fitting_new_items(live.new_items(), None, ["hose"], lambda i: live.describe(
        i, ("category", "brand", "title")), 3)
    assert session_only == ["rake"]  # an anonymous shopper looking at garden things
    assert matching_new_items(live.new_items(), ["garden", "rake"], 2) == ["rake"]
    assert matching_new_items(live.new_items(), ["rake", "tea"], 2) == []
