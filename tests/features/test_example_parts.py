"""The training set written and read part by part: whole lists per part, every row once, one schema."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shoprank.features.example_parts import ExampleParts, PartWriter, user_parts

T1, T2 = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-08", tz="UTC")


def test_parts_cover_every_drawn_list_once_and_keep_a_user_in_one_part():
    sampled = {T1: [f"u{k}" for k in range(0, 900)], T2: [f"u{k}" for k in range(300, 1300)]}
    parts = user_parts(sampled, lists_per_part=500)
    assert len(parts) == 4  # 1,900 lists in parts of at most ~500
    for at, users in sampled.items():
        together = [u for part in parts for u in part[at]]
        assert sorted(together) == sorted(users)  # each list once
    owner = {}
    for j, part in enumerate(parts):
        for users in part.values():
            for u in users:
                assert owner.setdefault(u, j) == j  # the same part at every cut-off
    assert max(sum(len(v) for v in part.values()) for part in parts) <= 650


def test_one_part_when_the_sample_is_small():
    assert user_parts({T1: ["a", "b"]}, lists_per_part=10) == [{T1: ["a", "b"]}]
    assert user_parts({}) == []


def _part(users, split, seed):
    rng = np.random.default_rng(seed)
    n = 5 * len(users)
    return pd.DataFrame({"user_key": np.repeat(users, 5), "event_timestamp": T1, "item_id": [f"i{k}" for k in range(n)],
                         "label": rng.integers(0, 2, n), "split": split, "shown_position": rng.integers(0, 3, n),
                         "note": None})


def test_written_parts_read_back_as_one_table_and_per_split_part_by_part(tmp_path):
    first = pd.concat([_part(["a", "b"], "train", 0), _part(["c"], "validation", 1)], ignore_index=True)
    second = _part(["d", "e", "f"], "train", 2).assign(note="x")  # the first part had this column all-null
    path = tmp_path / "examples.parquet"
    with PartWriter(path) as writer:
        writer.write(first)
        writer.write(second)
    assert pq.ParquetFile(path).num_row_groups == 2
    whole = pd.read_parquet(path)
    assert len(whole) == len(first) + len(second) and set(whole["note"].dropna()) == {"x"}

    train = ExampleParts(path, "train")
    assert train.rows_per_part == [10, 15] and train.rows == 25
    frames = list(train.frames())
    assert [sorted(set(f["user_key"])) for f in frames] == [["a", "b"], ["d", "e", "f"]]  # lists stay whole
    assert all((f["split"] == "train").all() for f in frames)
    shuffled = [sorted(set(f["user_key"]))[0] for f in train.frames(np.random.default_rng(3))]
    assert sorted(shuffled) == ["a", "d"]  # every part once per pass, whatever the order
    expected = int((first.loc[first["split"] == "train", "shown_position"] > 0).sum()
                   + (second["shown_position"] > 0).sum())
    assert train.count_positive("shown_position") == expected
    assert train.count_positive("no_such_column") == 0
    assert ExampleParts(path, "validation").rows == 5


def test_a_part_with_a_column_of_another_type_fails_with_its_name(tmp_path):
    with PartWriter(tmp_path / "examples.parquet") as writer:
        writer.write(_part(["a"], "train", 0))
        with pytest.raises(ValueError, match=r"part 2, column 'label' is string, the first part's is int64"):
            writer.write(_part(["b"], "train", 1).assign(label="yes"))
