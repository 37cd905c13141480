"""Rule sets under the store: a bad one never replaces a good one, two editors cannot overwrite each
other, every change is audited, and replicas pick changes up without a restart."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from shoprank.serving.decision.published import LiveRules, PublishConflict, audit_log, publish_rules
from shoprank.serving.decision.rules import RulesError
from shoprank.storage import open_store

KEY, AUDIT = "merchandising/rules.toml", "merchandising/audit"
NOW = datetime(2026, 11, 11, 9, tzinfo=UTC)
GOOD = 'version = "v1"\n[[pin]]\nname = "hero"\nitem = "B7"\nposition = 1\n'
BETTER = 'version = "v2"\nnew_item_slots = 2\n'


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "root"))
    return open_store(*request.getfixturevalue("s3_bucket"))


def test_a_published_set_is_served_after_a_refresh_and_audited(store):
    live = LiveRules(store, KEY)
    assert not live.refresh() and live.rules.pins == ()  # nothing published: no rules apply
    publish_rules(store, KEY, AUDIT, GOOD, "maria@shop", NOW)
    assert live.refresh() and live.rules.version == "v1" and live.rules.pins[0].item == "B7"
    assert not live.refresh()  # unchanged: nothing reloaded
    publish_rules(store, KEY, AUDIT, BETTER, "li@shop", NOW.replace(hour=10), based_on="v1")
    assert live.refresh() and live.rules.new_item_slots == 2
    log = audit_log(store, AUDIT)
    assert [(e["who"], e["version"], e["previous_version"]) for e in log] == [
        ("maria@shop", "v1", None), ("li@shop", "v2", "v1")]


def test_a_malformed_set_is_refused_and_nothing_changes(store):
    publish_rules(store, KEY, AUDIT, GOOD, "maria@shop", NOW)
    with pytest.raises(RulesError, match="rule 'hero', field 'position'"):
        publish_rules(store, KEY, AUDIT, GOOD.replace("position = 1", "position = -2"), "li@shop", NOW)
    assert store.get_bytes(KEY).decode() == GOOD and len(audit_log(store, AUDIT)) == 1


def test_a_change_made_on_an_old_version_is_refused(store):
    publish_rules(store, KEY, AUDIT, GOOD, "maria@shop", NOW)
    publish_rules(store, KEY, AUDIT, BETTER, "li@shop", NOW, based_on="v1")
    with pytest.raises(PublishConflict, match="at version 'v2', this change was made on 'v1'"):
        publish_rules(store, KEY, AUDIT, GOOD.replace("v1", "v3"), "maria@shop", NOW, based_on="v1")
    assert store.get_bytes(KEY).decode() == BETTER


def test_two_editors_saving_at_once_cannot_both_win(store):
    publish_rules(store, KEY, AUDIT, GOOD, "maria@shop", NOW)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def save(version: str) -> None:
        start.wait()
        try:
            publish_rules(store, KEY, AUDIT, f'version = "{version}"\n', version, NOW, based_on="v1")
            outcomes.append("saved")
        except PublishConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(v,)) for v in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "saved"]
    assert len(audit_log(store, AUDIT)) == 2


def test_a_set_broken_behind_the_apis_back_keeps_the_old_one_serving(store):
    live = LiveRules(store, KEY)
    publish_rules(store, KEY, AUDIT, GOOD, "maria@shop", NOW)
    live.refresh()
    store.put_bytes(KEY, b'version = "v9"\n[diversity]\nper_category = 0\ntop_k = 5\n')
    assert not live.refresh()
    assert live.rules.version == "v1"
    assert "still serving version 'v1'" in live.last_error and "field 'per_category'" in live.last_error
