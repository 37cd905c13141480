"""Validation works chunk by chunk: memory holds one chunk plus about one day of row hashes."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from shoprank.validation.profile import DayBuckets, ProfileBuilder
from shoprank.validation.readers import CanonicalBatch
from tests.validation.conftest import FIXTURES, finding


def test_reader_yields_bounded_chunks_with_provenance(make_batch):
    batch = make_batch()
    reader = CanonicalBatch(batch)
    chunks = list(reader.events(chunk_rows=1_000))
    sizes = [c.table.num_rows for c in chunks]
    largest_file = max(pq.read_metadata(p).num_rows for p in (batch / "events").rglob("*.parquet"))
    assert sum(sizes) == 6_000 and max(sizes) < 1_000 + largest_file
    keys = np.concatenate([c.keys for c in chunks])
    assert len(np.unique(keys)) == 6_000
    assert reader.provenance.locate(int(keys[0])) == "events/date=2024-01-01/part-0.parquet row 0"
    # days before the partition being read are complete and can be closed
    marks = [c.complete_before for c in chunks]
    assert marks[-1] is None and marks[:-1] == sorted(marks[:-1]) and marks[0] == "2024-01-02"


def test_day_buckets_are_closed_as_the_reader_moves_on(make_batch, gate, monkeypatch, tmp_path):
    open_rows: list[int] = []
    original = ProfileBuilder.close_before

    def spy(self, day):
        original(self, day)
        open_rows.append(sum(len(p[0]) for parts in self.buckets._open.values() for p in parts))

    monkeypatch.setattr(ProfileBuilder, "close_before", spy)
    config = tmp_path / "chunks.toml"
    config.write_text("[run]\nchunk_rows = 500\n")
    result = gate(make_batch(), config_path=config)
    assert result.passed and len(open_rows) > 7
    days = result.profile.day_counts.values()
    assert max(open_rows) <= max(days) + 500  # about one day plus one chunk, never the batch


def test_duplicates_across_chunks_and_unpartitioned_files(make_batch, gate, tmp_path):
    batch = make_batch()
    flat = batch / "events"
    for i, path in enumerate(sorted(flat.rglob("*.parquet"))):  # no date= folders at all
        path.rename(flat / f"part-{i}.parquet")
    (flat / "part-9.parquet").write_bytes((flat / "part-2.parquet").read_bytes())
    config = tmp_path / "chunks.toml"
    config.write_text("[run]\nchunk_rows = 700\n")
    f = finding(gate(batch, config_path=config), "events.duplicates")
    assert f.severity == "fail" and f.samples[0] == "events/part-9.parquet row 0 repeats events/part-2.parquet row 0"


def test_duplicate_counting_is_exact():
    buckets = DayBuckets(max_examples=3)
    hashes = np.array([5, 7, 5, 9, 5, 7], dtype=np.uint64)
    buckets.add(np.zeros(6, dtype=np.int64), hashes, np.arange(6, dtype=np.uint64), np.arange(10, 16))
    buckets.close_before(None)
    assert (buckets.dups.rows, buckets.dups.duplicates) == (6, 3)
    assert buckets.dups.examples == [(12, 10), (14, 10), (15, 11)]
    assert buckets.user_day_hist[0] == 6  # six users with one event each


def test_fixtures_folder_is_packaged_with_the_tests():
    assert (FIXTURES / "lenient.toml").exists()
