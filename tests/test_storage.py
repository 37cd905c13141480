"""The object store behaves the same over a local folder and over S3 (a real moto S3 server)."""

import pyarrow as pa
import pytest

from shoprank.storage import LocalStore, open_store, read_parquet, write_parquet


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return open_store(str(tmp_path / "root"))
    root, endpoint = request.getfixturevalue("s3_bucket")
    return open_store(root, endpoint)


def test_put_get_list_delete(store):
    store.put_bytes("a/b/one.bin", b"1")
    store.put_bytes("a/two.bin", b"22")
    store.put_bytes("c/three.bin", b"333")
    assert store.get_bytes("a/b/one.bin") == b"1"
    assert store.list("a/") == ["a/b/one.bin", "a/two.bin"]
    assert store.exists("c/three.bin") and not store.exists("c/nope.bin")
    assert store.delete_prefix("a/") == 2
    assert store.list("a/") == [] and store.list("c/") == ["c/three.bin"]


def test_parquet_round_trip(store):
    table = pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    write_parquet(store, "t/part-0.parquet", table)
    write_parquet(store, "t/part-1.parquet", table)
    assert read_parquet(store, "t/").num_rows == 6


def test_missing_prefix_names_the_location(store):
    with pytest.raises(FileNotFoundError, match="no parquet objects under .*nothing"):
        read_parquet(store, "nothing/")


def test_local_write_is_atomic(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put_bytes("k.bin", b"old")

    def broken_write(*_args, **_kwargs):
        raise OSError("disk full")

    import os

    monkeypatch.setattr(os, "replace", broken_write)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes("k.bin", b"new")
    monkeypatch.undo()
    assert store.get_bytes("k.bin") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k.bin"]  # no temp file left behind


def test_keys_cannot_escape_the_root(tmp_path):
    with pytest.raises(ValueError, match="escapes the store root"):
        LocalStore(tmp_path / "root").put_bytes("../outside.bin", b"x")
