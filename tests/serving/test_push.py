"""Push: new versions in TF Serving's layout, lineage, labels, retention and rollback."""

import pytest

from shoprank.serving.push import prune, push_model, read_lineage, rollback
from shoprank.serving.repository import model_versions, read_labels
from shoprank.storage import open_store


@pytest.fixture
def models(tmp_path):
    return open_store(str(tmp_path / "models"))


def test_versions_count_up_with_lineage_and_stable_label(models, tiny_model_dir):
    assert push_model(models, tiny_model_dir, "ranker", {"data_interval": ["a", "b"]}) == 1
    assert push_model(models, tiny_model_dir, "ranker", {"data_interval": ["b", "c"]}) == 2
    assert model_versions(models, "ranker") == [1, 2]
    assert read_labels(models, "ranker") == {"stable": 2}
    lineage = read_lineage(models, "ranker", 2)
    assert lineage["data_interval"] == ["b", "c"] and lineage["version"] == 2 and lineage["code_version"]
    assert models.exists("ranker/2/variables/variables.index")


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
    assert push_model(models, tiny_model_dir, "ranker", {}) == 2


def test_prune_keeps_labelled_versions(models, tiny_model_dir):
    for _ in range(4):
        push_model(models, tiny_model_dir, "ranker", {}, keep=0)
    rollback(models, "ranker", 1)
    assert prune(models, "ranker", keep=2) == [2]
    assert model_versions(models, "ranker") == [1, 3, 4]


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
