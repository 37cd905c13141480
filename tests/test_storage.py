"""The object store behaves the same over a local folder and over S3 (a real moto S3 server)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoprank.storage import LocalStore, open_store, read_parquet, write_parquet, write_parquet_parts


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


def _parts():
    yield pa.table({"x": pa.array([1, 2], pa.int64()), "y": [["a"], []]})
    yield pa.table({"x": pa.array([], pa.int64()), "y": pa.array([], pa.list_(pa.string()))})
    # a later part whose types were inferred differently (int32, list<large_string>): cast to the first's
    yield pa.table({"x": pa.array([3], pa.int32()), "y": pa.array([["b", "c"]], pa.list_(pa.large_string()))})


def test_parts_stream_into_one_object(store, tmp_path):
    rows = write_parquet_parts(store, "f/users.parquet", _parts(), tmp_path / "out" / "users.parquet")
    back = read_parquet(store, "f/users.parquet")
    assert rows == 3 and back.column("x").to_pylist() == [1, 2, 3]
    assert back.column("y").to_pylist() == [["a"], [], ["b", "c"]]
    assert back.schema.field("x").type == pa.int64()
    assert pq.read_table(tmp_path / "out" / "users.parquet").equals(back)  # the artifact is the object


def test_only_empty_parts_write_an_empty_object_with_their_schema(store, tmp_path):
    empty = pa.table({"x": pa.array([], pa.int64())})
    assert write_parquet_parts(store, "f/e.parquet", iter([empty]), tmp_path / "e.parquet") == 0
    assert read_parquet(store, "f/e.parquet").schema.names == ["x"]


def test_a_part_that_fails_halfway_leaves_the_old_object_and_no_file(store, tmp_path):
    write_parquet(store, "f/users.parquet", pa.table({"x": [9]}))

    def dies():
        yield pa.table({"x": pa.array([1], pa.int64())})
        raise MemoryError("snapshot 2 did not fit")

    out = tmp_path / "out"
    with pytest.raises(MemoryError, match="snapshot 2"):
        write_parquet_parts(store, "f/users.parquet", dies(), out / "users.parquet")
    assert read_parquet(store, "f/users.parquet").column("x").to_pylist() == [9]
    assert list(out.iterdir()) == []  # neither the artifact nor its temporary file


def test_a_part_with_other_columns_is_named(store, tmp_path):
    write_parquet(store, "f/users.parquet", pa.table({"x": [9]}))
    parts = iter([pa.table({"x": [1]}), pa.table({"z": [2]})])
    with pytest.raises(ValueError, match=r"users.parquet: part 1 has schema z: int64.*expected the first part's x"):
        write_parquet_parts(store, "f/users.parquet", parts, tmp_path / "users.parquet")
    assert read_parquet(store, "f/users.parquet").column("x").to_pylist() == [9]
    assert not (tmp_path / "users.parquet").exists()


def test_put_file_copies_without_leaving_temporary_files(store, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100_000)
    store.put_file("deep/k/big.bin", source)
    assert store.get_bytes("deep/k/big.bin") == source.read_bytes()
    assert store.list("deep/") == ["deep/k/big.bin"]
    if isinstance(store, LocalStore):
        assert [p.name for p in Path(store.root, "deep", "k").iterdir()] == ["big.bin"]


def _folder_state(parent) -> dict:
    return {p.relative_to(parent).as_posix(): p.read_text() for p in sorted(parent.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_replacing_dir_swaps_in_a_whole_folder_and_leaves_nothing_behind(tmp_path, monkeypatch, exchange):
    import shoprank.storage as storage
    from shoprank.storage import replacing_dir

    if not exchange:
        monkeypatch.setattr(storage, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    with replacing_dir(target) as tmp:
        assert not target.exists()
        (tmp / "a.txt").write_text("first")
    assert _folder_state(tmp_path) == {"out/a.txt": "first"}
    with replacing_dir(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("second")
        assert _folder_state(target) == {"a.txt": "first"}  # readers still see the old folder
    assert _folder_state(tmp_path) == {"out/sub/b.txt": "second"}  # no .partial or .old left


def test_replacing_dir_that_fails_keeps_the_old_folder_and_removes_the_temporary_one(tmp_path):
    from shoprank.storage import replacing_dir

    target = tmp_path / "out"
    target.mkdir()
    (target / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError, match="halfway"), replacing_dir(target) as tmp:
        (tmp / "half.txt").write_text("new")
        raise RuntimeError("died halfway")
    assert _folder_state(tmp_path) == {"out/kept.txt": "old"}


def test_open_for_names_the_store_and_narrows_it_to_a_layout_prefix(tmp_path, monkeypatch):
    from shoprank import layout
    from shoprank.settings import load_settings
    from shoprank.storage import open_for

    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path))
    settings = load_settings()
    state = open_for(settings, "store", layout.GATE_STATE_PREFIX)
    state.put_bytes("reference.json", b"{}")
    assert open_for(settings).list(layout.GATE_STATE_PREFIX) == [f"{layout.GATE_STATE_PREFIX}/reference.json"]
    assert open_for(settings, "models").root == settings.models
    with pytest.raises(ValueError, match="unknown store 'raw'"):
        open_for(settings, "raw")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_put_dir_writes_the_manifest_last_and_a_dying_upload_leaves_none(tmp_path, s3_bucket, backend):
    from shoprank.storage import put_dir

    store = open_store(str(tmp_path / "store")) if backend == "local" else open_store(*s3_bucket)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a")
    (folder / "sub" / "b.bin").write_bytes(b"b")
    assert put_dir(store, "dir/1", folder, "manifest.json", b"{}") == ["dir/1/a.bin", "dir/1/sub/b.bin",
                                                                      "dir/1/manifest.json"]
    real, calls = store.put_file, []

    def dying(key, path):
        calls.append(key)
        if len(calls) == 2:
            raise OSError("connection reset")
        real(key, path)

    store.put_file = dying  # type: ignore[method-assign]
    with pytest.raises(OSError, match="reset"):
        put_dir(store, "dir/2", folder, "manifest.json", b"{}")
    assert store.list("dir/2/") == ["dir/2/a.bin"]  # files without a manifest: readers skip the prefix


def test_an_erasure_drops_a_shoppers_rows_and_json_entries_and_leaves_the_rest(tmp_path):
    import json

    import pyarrow as pa

    from shoprank.storage import drop_json_entries_under, drop_rows, drop_rows_under, open_store, write_parquet

    store = open_store(str(tmp_path))
    write_parquet(store, "a/t.parquet", pa.table({"user_key": ["x", "y", None, "x"], "n": [1, 2, 3, 4]}))
    write_parquet(store, "a/other.parquet", pa.table({"item_id": ["x"]}))  # no such column: untouched
    store.put_bytes("a/truth.json", json.dumps({"x": ["i1"], "y": ["x", "i2"], "meta": {"x": 1}}).encode())
    store.put_bytes("a/notes.json", b"not json")
    assert drop_rows_under(store, "a/", "user_key", {"x"}) == {"a/t.parquet": 2}
    assert drop_rows(store, "a/t.parquet", "user_key", {"x"}) == 0  # done already
    import io

    import pyarrow.parquet as pq

    assert pq.read_table(io.BytesIO(store.get_bytes("a/t.parquet"))).column("n").to_pylist() == [2, 3]
    assert drop_json_entries_under(store, "a/", {"x"}) == {"a/truth.json": 3}
    assert json.loads(store.get_bytes("a/truth.json")) == {"y": ["i2"], "meta": {}}


def _snapshots(n: int = 4, rows: int = 20_000):
    """Parts of one offline source, one snapshot time each, of incompressible values: each is a
    row group of real size."""
    import numpy as np

    rng = np.random.default_rng(0)
    for k in range(n):
        stamp = pa.array([k * 86_400_000_000] * rows, pa.timestamp("us", tz="UTC"))
        yield pa.table({"event_timestamp": stamp, "value": rng.random(rows)})


def test_a_filtered_read_returns_the_rows_a_full_read_and_filter_would(store, tmp_path):
    import pyarrow.compute as pc

    from shoprank.storage import read_parquet_where

    write_parquet_parts(store, "o/users.parquet", _snapshots(), tmp_path / "users.parquet")
    newest = pa.scalar(3 * 86_400_000_000, pa.timestamp("us", tz="UTC"))
    got = read_parquet_where(store, "o/users.parquet", [("event_timestamp", ">=", newest)])
    whole = read_parquet(store, "o/users.parquet")
    expected = whole.filter(pc.greater_equal(whole.column("event_timestamp"), newest))
    assert got.num_rows == 20_000 and got.equals(expected)
    assert read_parquet_where(store, "o/users.parquet", [("event_timestamp", ">", newest)]).num_rows == 0


def test_a_filtered_read_from_s3_fetches_the_row_groups_it_needs_not_the_object(s3_bucket, tmp_path):
    """What keeps the materialise step's memory flat: the newest snapshot of a source of many."""
    from shoprank.storage import read_parquet_where

    store = open_store(*s3_bucket)
    write_parquet_parts(store, "o/users.parquet", _snapshots(), tmp_path / "users.parquet")
    size = (tmp_path / "users.parquet").stat().st_size
    fetched = []
    get_object = store._s3.get_object

    def counting(**kwargs):
        response = get_object(**kwargs)
        fetched.append(response["ContentLength"])
        return response

    store._s3.get_object = counting
    newest = pa.scalar(3 * 86_400_000_000, pa.timestamp("us", tz="UTC"))
    assert read_parquet_where(store, "o/users.parquet", [("event_timestamp", ">=", newest)]).num_rows == 20_000
    assert fetched and sum(fetched) < 0.45 * size, (sum(fetched), size)
