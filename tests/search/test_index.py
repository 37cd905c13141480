"""The lexical index: BM25 over title, category and brand; versions published whole, manifest last."""

import threading

import numpy as np
import pandas as pd
import pytest

from shoprank.search.index import MANIFEST, SearchIndex, index_versions, publish_index
from shoprank.search.text import query_tokens
from shoprank.storage import open_store

CATALOGUE = pd.DataFrame({
    "item_id": ["a1", "a2", "a3", "b1", "b2", "c1"],
    "category": ["drinks.tea", "drinks.tea", "drinks.tea", "snacks.chocolate", "snacks.chocolate", "dairy.milk"],
    "brand": ["Lipton", "Twinings", None, "Lindt", None, "明治"],
    "price": [2.0, 3.0, 1.0, 4.0, 1.5, 1.2],
    "title": ["Lipton green tea 20 bags", "Twinings earl grey tea", "house black tea", "Lindt dark chocolate 70%",
              "milk chocolate bar", "明治牛奶 1L"],
})
POPULARITY = {"a1": 5.0, "a2": 50.0, "a3": 20.0, "b1": 1.0, "b2": 9.0}


@pytest.fixture
def index() -> SearchIndex:
    return SearchIndex.build(CATALOGUE, POPULARITY)


def ids(index, rows):
    return [index.item_ids[r] for r in rows]


def test_matches_every_field_and_no_match_is_empty(index):
    assert set(ids(index, index.lexical(query_tokens("tea"), 10).rows)) == {"a1", "a2", "a3"}
    assert ids(index, index.lexical(query_tokens("LINDT"), 10).rows) == ["b1"]  # brand, case folded
    assert ids(index, index.lexical(query_tokens("牛奶"), 10).rows) == ["c1"]  # CJK bigram in the title
    assert ids(index, index.lexical(query_tokens("明治"), 10).rows) == ["c1"]  # CJK brand
    empty = index.lexical(query_tokens("bicycle"), 10)
    assert len(empty.rows) == 0 and empty.n_matched == 0


def test_equal_bm25_is_ordered_by_popularity_and_marked_tied(index):
    tied = SearchIndex.build(CATALOGUE.assign(title=None, brand=None), POPULARITY)
    result = tied.lexical(query_tokens("tea"), 10)
    assert ids(tied, result.rows) == ["a2", "a3", "a1"]  # one BM25 for all: popularity decides
    assert result.tied.tolist() == [False, True, True]
    # a better text match outranks popularity
    result = index.lexical(query_tokens("earl grey tea"), 10)
    assert ids(index, result.rows)[0] == "a2" and not result.tied[0]


def test_lexical_cut_keeps_the_best_n(index):
    result = index.lexical(query_tokens("tea chocolate"), 2)
    assert len(result.rows) == 2 and result.n_matched == 5
    assert np.all(np.diff(result.bm25) <= 1e-6)


def test_save_and_load_answer_the_same(index, tmp_path):
    folder = index.save(tmp_path / "v")
    assert not (tmp_path / "v.partial").exists()
    loaded = SearchIndex.load(folder)
    for query in ("tea", "dark chocolate", "牛奶", "nothing"):
        toks = query_tokens(query)
        np.testing.assert_allclose(loaded.scores(toks), index.scores(toks))
        assert ids(loaded, loaded.lexical(toks, 5).rows) == ids(index, index.lexical(toks, 5).rows)
    assert loaded.field_tokens["brand"][loaded.position["a1"]] == frozenset({"lipton"})


def test_a_folder_without_its_manifest_is_refused(index, tmp_path):
    folder = index.save(tmp_path / "v")
    (folder / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match="not a complete search index"):
        SearchIndex.load(folder)


def test_an_empty_catalogue_is_refused():
    with pytest.raises(ValueError, match="empty catalogue"):
        SearchIndex.build(CATALOGUE.iloc[:0])


def test_versions_publish_in_order_and_old_ones_are_pruned(index, tmp_path):
    store = open_store(str(tmp_path / "models"))
    folder = index.save(tmp_path / "built")
    assert [publish_index(store, folder, {"night": n}, keep=2) for n in range(3)] == [1, 2, 3]
    assert index_versions(store) == [2, 3]
    assert not store.list("search_index/1/")


def test_an_upload_that_dies_is_never_a_version_and_its_number_is_not_reused(index, tmp_path):
    store = open_store(str(tmp_path / "models"))
    folder = index.save(tmp_path / "built")
    real_put = store.put_file
    calls = {"n": 0}

    def dying_put(key, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("connection reset")
        real_put(key, path)

    store.put_file = dying_put  # type: ignore[method-assign]
    with pytest.raises(OSError):
        publish_index(store, folder, {})
    store.put_file = real_put  # type: ignore[method-assign]
    assert index_versions(store) == []  # files of version 1 are there, but no manifest
    assert store.list("search_index/1/")
    assert publish_index(store, folder, {}) == 2
    assert index_versions(store) == [2] and not store.list("search_index/1/")


def test_two_publishers_at_once_get_distinct_versions(index, tmp_path):
    store = open_store(str(tmp_path / "models"))
    folder = index.save(tmp_path / "built")
    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(publish_index(store, folder, {}))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [1, 2, 3] and index_versions(store) == [1, 2, 3]
