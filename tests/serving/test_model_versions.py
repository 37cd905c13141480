"""Which versions a model server serves: only complete, loaded and warmed ones; bad versions are
skipped without stopping newer ones; labels move only to loaded versions; an S3 copy that dies
halfway is never taken as complete."""

import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from shoprank.features.derived import model_inputs
from shoprank.models.export import WARMUP_FILE
from shoprank.serving.model_server.client import GrpcClient
from shoprank.serving.model_server.repository import ModelRepository
from shoprank.serving.model_server.server import ModelServer
from shoprank.serving.model_server.versions import CACHE_MARKER
from shoprank.serving.registry.infra_validate import warmup_records
from shoprank.serving.registry.push import push_model, write_labels
from shoprank.storage import open_store
from tests.conftest import tiny_examples


@pytest.fixture
def inputs():
    return model_inputs(tiny_examples(8, seed=9))


def _states(repository, name="ranker"):
    return {v: s.state for v, s in repository.status(name).items()}


def test_corrupt_and_half_copied_versions_are_skipped_and_newer_ones_still_load(tmp_path, tiny_model_dir, capsys):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    corrupt = base / "ranker" / "2"
    shutil.copytree(tiny_model_dir, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x00 not a SavedModel \xff" * 10)
    half = base / "ranker" / "3"  # saved_model.pb copied, variables not yet
    shutil.copytree(tiny_model_dir, half, ignore=shutil.ignore_patterns("variables"))
    repository = ModelRepository(str(base))
    repository.refresh()  # must not raise
    assert _states(repository) == {3: "END", 2: "END", 1: "AVAILABLE"}
    assert repository.get("ranker").version == 1
    logged = capsys.readouterr().out
    assert "ranker v2 failed to load and is skipped" in logged and "ranker v3 failed to load" in logged
    assert repository.status("ranker")[2].error  # the reason is kept for GetModelStatus
    shutil.copytree(tiny_model_dir, base / "ranker" / "4")  # a newer good version still loads
    repository.refresh()
    assert repository.get("ranker").version == 4 and _states(repository)[4] == "AVAILABLE"
    shutil.copytree(tiny_model_dir / "variables", half / "variables")  # the copy of v3 completes
    repository.refresh()
    assert _states(repository)[3] == "AVAILABLE"
    capsys.readouterr()
    repository.refresh()  # the unchanged corrupt v2 is not retried on every poll
    assert "v2" not in capsys.readouterr().out


def test_labels_point_only_at_loaded_versions(tmp_path, tiny_model_dir, inputs):
    base = tmp_path / "models"
    store = open_store(str(base))
    push_model(store, tiny_model_dir, "ranker", {})
    broken = push_model(store, tiny_model_dir, "ranker", {})  # v2, stable -> 2
    (base / "ranker" / str(broken) / "saved_model.pb").write_bytes(b"garbage")
    repository = ModelRepository(str(base))
    repository.refresh()
    assert repository.labels("ranker") == {}  # stable -> 2 cannot load and had no loaded target before
    write_labels(store, "ranker", {"stable": 1, "canary": 2})
    repository.refresh()
    assert repository.labels("ranker") == {"stable": 1}  # canary waits for a loaded v2
    write_labels(store, "ranker", {"stable": 2})
    repository.refresh()
    assert repository.labels("ranker") == {"stable": 1}  # stays where it was, still serving
    assert repository.get("ranker", label="stable").version == 1
    with pytest.raises(KeyError, match="no loaded version labelled 'canary'"):
        repository.get("ranker", label="canary")


def test_a_version_serves_only_after_its_warmup_requests_ran(tmp_path, tiny_model_dir, inputs):
    good = shutil.copytree(tiny_model_dir, tmp_path / "good")
    (good / WARMUP_FILE).parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(good / WARMUP_FILE)) as writer:
        for record in warmup_records("ranker", inputs, 3):
            writer.write(record)
    bad = shutil.copytree(tiny_model_dir, tmp_path / "bad")
    (bad / WARMUP_FILE).parent.mkdir(exist_ok=True)
    partial = {k: v for k, v in inputs.items() if k != "ui_score"}
    with tf.io.TFRecordWriter(str(bad / WARMUP_FILE)) as writer:
        for record in warmup_records("ranker", partial, 1):
            writer.write(record)
    base = tmp_path / "models"
    shutil.copytree(good, base / "ranker" / "1")
    shutil.copytree(bad, base / "ranker" / "2")
    messages = []
    repository = ModelRepository(str(base), log=messages.append)
    repository.refresh()
    assert any("ranker v1 AVAILABLE" in m and "3 warm-up requests replayed" in m for m in messages)
    assert _states(repository) == {2: "END", 1: "AVAILABLE"}  # warm-up failed: never served
    assert "missing input 'ui_score'" in repository.status("ranker")[2].error


def test_new_version_is_picked_up_and_labels_pin_stable(tmp_path, tiny_model_dir, inputs):
    base = tmp_path / "models"
    shutil.copytree(tiny_model_dir, base / "ranker" / "1")
    server = ModelServer(str(base), rest_port=0, grpc_port=0, poll_seconds=0.1).start()
    client = GrpcClient(f"127.0.0.1:{server.grpc_port}")
    try:
        half_copied = base / "ranker" / "2"
        shutil.copytree(tiny_model_dir, half_copied, ignore=shutil.ignore_patterns("saved_model.pb"))
        time.sleep(0.5)
        assert _states(server.repository) == {1: "AVAILABLE"}  # no saved_model.pb yet: invisible
        shutil.copyfile(tiny_model_dir / "saved_model.pb", half_copied / "saved_model.pb")
        deadline = time.monotonic() + 20
        while client.predict_versioned("ranker", inputs).version != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.predict_versioned("ranker", inputs).version == 2  # unlabelled: newest
        write_labels(open_store(str(base)), "ranker", {"stable": 1, "canary": 2})
        deadline = time.monotonic() + 20
        while server.repository.labels("ranker") != {"stable": 1, "canary": 2} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.predict_versioned("ranker", inputs).version == 1  # stable pins the default
        assert client.predict_versioned("ranker", inputs, label="canary").version == 2
        assert client.predict("ranker", inputs, label="canary")["score"].shape == (8,)
    finally:
        client.close()
        server.stop()


def test_s3_model_cache_that_dies_halfway_is_never_taken_as_complete(s3_bucket, tmp_path, tiny_model_dir, inputs):
    root, endpoint = s3_bucket
    store = open_store(root, endpoint)
    push_model(store, tiny_model_dir, "ranker", {})
    cache = tmp_path / "cache"
    repository = ModelRepository(root, endpoint, cache_dir=str(cache))
    real_get = repository.store.get_bytes
    calls = {"n": 0}

    def dying_get(key):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("connection reset by peer")
        return real_get(key)

    repository.store.get_bytes = dying_get
    repository.refresh()
    assert _states(repository) == {1: "END"} and "connection reset" in repository.status("ranker")[1].error
    assert not (cache / "ranker" / "1").exists()  # nothing half-copied under the version's name
    assert not list((cache / "ranker").glob(".*partial"))  # and no scratch left behind
    # an older, unmarked copy (e.g. from an interrupted run) is not trusted either
    (cache / "ranker" / "1").mkdir(parents=True)
    shutil.copyfile(tiny_model_dir / "saved_model.pb", cache / "ranker" / "1" / "saved_model.pb")
    repository.store.get_bytes = real_get
    repository._states.clear()  # a restarted server
    repository.refresh()
    assert _states(repository) == {1: "AVAILABLE"}
    assert (cache / "ranker" / "1" / CACHE_MARKER).exists()
    scores = repository.get("ranker").predict(inputs)["score"]
    assert scores.shape == (8,) and np.all(np.isfinite(scores))
