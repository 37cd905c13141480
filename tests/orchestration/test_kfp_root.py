"""The one-off purge of what the retired raw-data tasks left under the KFP pipeline root."""

from shoprank.cli import main
from shoprank.orchestration.kfp_root import purge_raw_artifacts
from shoprank.storage import open_store


def pipeline_root(tmp_path):
    store = open_store(str(tmp_path / "kfp"))
    for key in ("shoprank-nightly/run-1/ingest/batch/events/date=2001-01-01/part-0.parquet",
                "shoprank-nightly/run-1/features/queries", "shoprank-nightly/run-1/validate/report",
                "shoprank-nightly/run-1/train/model/saved_model.pb", "shoprank-nightly/run-2/receive/interactions",
                "shoprank-nightly/run-2/snapshots/snapshots/user_stats.parquet"):
        store.put_bytes(key, b"x")
    return store


def test_only_the_retired_tasks_artifacts_are_purged(tmp_path):
    store = pipeline_root(tmp_path)
    listed = purge_raw_artifacts(store)
    assert listed.deleted == 0 and len(listed.matched) == 3  # a dry run deletes nothing
    done = purge_raw_artifacts(store, dry_run=False)
    assert done.deleted == 3
    assert store.list("") == ["shoprank-nightly/run-1/train/model/saved_model.pb",
                              "shoprank-nightly/run-2/receive/interactions",
                              "shoprank-nightly/run-2/snapshots/snapshots/user_stats.parquet"]


def test_the_command_lists_first_and_deletes_with_yes(tmp_path, home, capsys):
    store = pipeline_root(tmp_path)
    assert main(["kfp", "purge-raw-artifacts", "--root", str(tmp_path / "kfp")]) == 0
    assert '"matched": 3' in capsys.readouterr().out and len(store.list("")) == 6
    assert main(["kfp", "purge-raw-artifacts", "--root", str(tmp_path / "kfp"), "--yes"]) == 0
    assert len(store.list("")) == 3
