"""Push, rollback and labels through TF Serving's model config: new versions in TF Serving's layout,
the two-step label move, lineage, retention, and two pushes at once."""

import threading

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from shoprank.serving.model_server import model_config
from shoprank.serving.model_server.versions import model_versions, read_labels
from shoprank.serving.registry.push import (
    VersionNotLoaded,
    move_label,
    prune,
    push_model,
    read_lineage,
    rollback,
    wait_until_available,
)
from shoprank.storage import open_store


@pytest.fixture
def models(tmp_path):
    return open_store(str(tmp_path / "models"))


def parsed(store) -> model_server_config_pb2.ModelServerConfig:
    """The written file, parsed by TF Serving's own proto (what tensorflow_model_server reads)."""
    text = store.get_bytes(model_config.CONFIG_FILE).decode()
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_versions_count_up_with_lineage_and_the_config_tf_serving_polls(models, tiny_model_dir):
    assert push_model(models, tiny_model_dir, "ranker", {"data_interval": ["a", "b"]}) == 1
    assert push_model(models, tiny_model_dir, "ranker", {"data_interval": ["b", "c"]}) == 2
    assert model_versions(models, "ranker") == [1, 2]
    assert read_labels(models, "ranker") == {"stable": 2}
    (entry,) = parsed(models).model_config_list.config
    assert entry.name == "ranker" and entry.base_path == models.uri("ranker") and entry.model_platform == "tensorflow"
    assert list(entry.model_version_policy.specific.versions) == [1, 2]  # the one before stays loaded
    assert dict(entry.version_labels) == {"stable": 2}
    lineage = read_lineage(models, "ranker", 2)
    assert lineage["data_interval"] == ["b", "c"] and lineage["version"] == 2 and lineage["code_version"]
    assert models.exists("ranker/2/variables/variables.index")


def test_the_label_moves_only_after_the_version_is_loaded(models, tiny_model_dir):
    push_model(models, tiny_model_dir, "ranker", {})
    seen = {}

    def wait_loaded(version):  # what the model server is asked while the version loads
        (entry,) = parsed(models).model_config_list.config
        seen["versions"] = list(entry.model_version_policy.specific.versions)
        seen["labels"] = dict(entry.version_labels)

    push_model(models, tiny_model_dir, "ranker", {}, wait_loaded=wait_loaded)
    assert seen == {"versions": [1, 2], "labels": {"stable": 1}}  # step 1: served, label still on v1
    assert read_labels(models, "ranker") == {"stable": 2}  # step 2: moved once loaded


def test_a_version_that_never_loads_never_gets_the_label(models, tiny_model_dir):
    push_model(models, tiny_model_dir, "ranker", {})

    def status(name, version):
        return {"model_version_status": [{"version": str(version), "state": "END",
                                          "status": {"error_code": "UNKNOWN", "error_message": "corrupt"}}]}

    with pytest.raises(VersionNotLoaded, match="v2 failed to load; the label stays: corrupt"):
        push_model(models, tiny_model_dir, "ranker", {}, wait_loaded=wait_until_available(status, "ranker", 5))
    assert read_labels(models, "ranker") == {"stable": 1}
    never = wait_until_available(lambda n, v: {"model_version_status": []}, "ranker", timeout_s=0.3, poll_s=0.05)
    with pytest.raises(VersionNotLoaded, match="not AVAILABLE after"):
        move_label(models, "ranker", "stable", 2, wait_loaded=never)


def test_canary_label_leaves_stable_alone(models, tiny_model_dir):
    push_model(models, tiny_model_dir, "ranker", {})
    push_model(models, tiny_model_dir, "ranker", {}, label="canary")
    assert read_labels(models, "ranker") == {"stable": 1, "canary": 2}


def test_interrupted_push_is_invisible_and_retried_cleanly(models, tiny_model_dir, monkeypatch):
    push_model(models, tiny_model_dir, "ranker", {})
    real_put = models.put_bytes

    def failing_put(key, data):
        if key.endswith("saved_model.pb"):
            raise OSError("network dropped")
        real_put(key, data)

    monkeypatch.setattr(models, "put_bytes", failing_put)
    with pytest.raises(OSError, match="network dropped"):
        push_model(models, tiny_model_dir, "ranker", {})
    monkeypatch.undo()
    assert model_versions(models, "ranker") == [1]  # version 2 has no saved_model.pb: servers ignore it
    assert read_labels(models, "ranker") == {"stable": 1}
    assert push_model(models, tiny_model_dir, "ranker", {}) == 2  # the lock was released on the error


def test_prune_keeps_served_and_labelled_versions(models, tiny_model_dir):
    for _ in range(4):
        push_model(models, tiny_model_dir, "ranker", {}, keep=0)
    rollback(models, "ranker", 1)
    assert prune(models, "ranker", keep=1) == [2]  # 1 is stable, 3 and 4 the newest served
    assert model_versions(models, "ranker") == [1, 3, 4]
    for _ in range(6):  # after many pushes the labelled version is still there
        push_model(models, tiny_model_dir, "ranker", {}, label="canary", keep=2)
    assert 1 in model_versions(models, "ranker") and read_labels(models, "ranker")["stable"] == 1


def test_rollback_moves_stable_back(models, tiny_model_dir):
    push_model(models, tiny_model_dir, "ranker", {})
    with pytest.raises(ValueError, match="no version older than stable=1"):
        rollback(models, "ranker")
    push_model(models, tiny_model_dir, "ranker", {})
    assert rollback(models, "ranker") == 1 and read_labels(models, "ranker")["stable"] == 1
    with pytest.raises(ValueError, match="has no version 9"):
        rollback(models, "ranker", 9)


def test_push_refuses_a_directory_without_saved_model(models, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a SavedModel"):
        push_model(models, tmp_path / "empty", "ranker", {})
    assert models.list("") == []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_pushes_at_once_get_different_versions_and_lose_nothing(backend, request, models, tiny_model_dir):
    if backend == "s3":
        root, endpoint = request.getfixturevalue("s3_bucket")
        models = open_store(root, endpoint)
    results, errors = [], []

    def push(label):
        try:
            results.append(push_model(models, tiny_model_dir, "ranker", {"by": label}, label=label))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=push, args=(label,)) for label in ("stable", "canary", "blue", "green")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and sorted(results) == [1, 2, 3, 4]
    labels = read_labels(models, "ranker")
    assert sorted(labels.values()) == [1, 2, 3, 4]  # every push's label survived the others
    assert {read_lineage(models, "ranker", v)["by"] for v in results} == set(labels)
