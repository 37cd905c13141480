"""Gate semantics around the state (only a passed batch becomes the reference) and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.validation.conftest import finding


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (not the local store's hidden .flock guard, which holds nothing)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".flock")}


def _broken(events, items, users):
    events.loc[events.index[:50], "event_type"] = "clicked"
    return events, items, users


def test_failed_gate_leaves_the_state_untouched_and_cannot_be_accepted(make_batch, gate, next_week):
    from shoprank.validation import GateFailed, accept_batch

    gate.accept(gate(make_batch(name="week1")))
    before = _snapshot(gate.state_dir)
    assert list(before) == ["gate_state.json"]
    failed = gate(make_batch(_broken, base=next_week, name="week2"), interval_start=pd.Timestamp("2024-01-08"),
                  interval_end=pd.Timestamp("2024-01-15"))
    assert not failed.passed
    with pytest.raises(ValueError, match="refusing to accept a batch that failed the validation gate"):
        accept_batch(failed, gate.state_dir)
    assert _snapshot(gate.state_dir) == before  # byte for byte
    err = GateFailed(failed)
    assert err.result is failed and str(err).startswith("validation gate FAILED: 1 failing check")


def test_a_passing_run_does_not_write_state_until_accepted(make_batch, gate):
    result = gate(make_batch())
    assert result.passed and not gate.state_dir.exists()
    gate.accept(result)
    state = json.loads((gate.state_dir / "gate_state.json").read_text())
    assert state["version"] == 1 and state["batch"].endswith("batch")
    assert state["reference"]["events"] == 6_000
    assert sorted(state["volume_history"]) == [f"2024-01-0{d}" for d in range(1, 8)]
    assert sum(state["volume_history"].values()) == 6_000
    # no temp file left behind (the hidden .flock is the local store's compare-and-swap guard)
    assert [p.name for p in gate.state_dir.iterdir() if not p.name.endswith(".flock")] == ["gate_state.json"]


def test_accepted_batch_becomes_the_drift_reference(make_batch, gate, next_week):
    week2 = {"interval_start": pd.Timestamp("2024-01-08"), "interval_end": pd.Timestamp("2024-01-15")}
    gate.accept(gate(make_batch(name="week1")))
    second = gate(make_batch(base=next_week, name="week2"), **week2)
    gate.accept(second)
    state = json.loads((gate.state_dir / "gate_state.json").read_text())
    assert state["batch"].endswith("week2")
    assert len(state["volume_history"]) == 14  # history keeps both weeks, the reference is the last one
    assert state["reference"]["day_counts"] == second.profile.day_counts


def test_corrupt_state_is_a_clear_error(make_batch, gate):
    from shoprank.data.errors import InputError

    gate.state_dir.mkdir()
    (gate.state_dir / "gate_state.json").write_text("{not json")
    with pytest.raises(InputError, match=r"gate_state.json: unreadable gate state .*delete it to start afresh"):
        gate(make_batch())


def test_reports_per_run_summary_findings_and_data_docs(make_batch, gate):
    result = gate(make_batch(_broken))
    run_dir = result.report_dir
    assert run_dir is not None and run_dir.parent == gate.reports_dir
    assert (run_dir / "summary.txt").read_text() == result.summary + "\n"
    saved = json.loads((run_dir / "findings.json").read_text())
    assert saved["passed"] is False and saved["counts"]["events"] == 6_000
    assert any(f["check"] == "events.event_type.in_set" and f["severity"] == "fail" for f in saved["findings"])
    assert result.data_docs == run_dir / "data_docs" / "index.html" and result.data_docs.exists()
    pages = list((run_dir / "data_docs" / "validations").rglob("*.html"))
    assert len(pages) == 3  # one validation page per table
    events_page = next(p for p in pages if p.name.startswith("events-")).read_text()
    assert "values must belong to this set" in events_page and "clicked" in events_page
    assert f"Data Docs: {result.data_docs}" in result.summary


def test_old_report_folders_are_pruned(make_batch, gate, tmp_path):
    config = tmp_path / "keep2.toml"
    config.write_text("[run]\nkeep_reports = 2\n")
    batch = make_batch()
    runs = [gate(batch, config_path=config).report_dir for _ in range(3)]
    assert sorted(p.name for p in gate.reports_dir.iterdir()) == sorted(r.name for r in runs[1:])


def test_findings_are_ordered_fail_warn_info_in_the_summary(make_batch, gate):
    def edit(events, items, users):
        items.loc[items.index[:40], "brand"] = None
        return _broken(events, items, users)

    summary = gate(make_batch(edit)).summary
    assert summary.index("FAIL  events events.event_type.in_set") < summary.index("WARN  items  items.brand") \
        < summary.index("INFO  events events.volume")


def test_events_only_parquet_file(make_batch, gate):
    batch = make_batch()
    result = gate(batch / "events" / "date=2024-01-02" / "part-0.parquet", interval_start=None, interval_end=None)
    assert result.passed
    assert finding(result, "items.columns").observed == "no items table in this input: checks against it are skipped"
    assert "skipped: the input has no items table" in finding(result, "events.item_id.known").observed


def test_the_state_lives_in_the_object_store_and_a_concurrent_accept_is_caught(make_batch, gate, s3_bucket):
    """In the cluster the state is an S3 object (not a pod's home folder): the next run, anywhere,
    compares with it; two runs accepting at once cannot silently overwrite each other."""
    from shoprank.storage import open_store
    from shoprank.validation import accept_batch, load_state

    root, endpoint = s3_bucket
    state = open_store(f"{root}/state/validation", endpoint)
    first = gate(make_batch(name="week1"), state_dir=state)
    assert [f for f in first.findings if "no accepted batch" in f.observed]  # nothing to compare with yet
    accept_batch(first, state)
    assert load_state(state)["batch"] == first.batch and state.exists("gate_state.json")
    second = gate(make_batch(name="week1-again"), state_dir=state)
    assert not [f for f in second.findings if "no accepted batch" in f.observed]  # drift/volume compared

    real_read = state.read_versioned

    def racing_read(key):  # another run accepts right after this one read the state
        found = real_read(key)
        state.put_bytes(key, found[0].replace(b'"version"', b'"version"  '))
        return found

    state.read_versioned = racing_read
    with pytest.raises(RuntimeError, match="changed while this batch was being accepted"):
        accept_batch(second, state)
