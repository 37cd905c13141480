"""The zone runner: a private task runs in its own process with only the private zone's settings."""

import os

import pytest

from shoprank.orchestration.zone_runner import (
    ZONE_BOUND_VARS,
    PrivateTaskFailed,
    read_env_file,
    run_private,
    zone_environment,
)
from shoprank.settings import load_settings


def zone_dir(tmp_path):
    folder = tmp_path / "zones"
    folder.mkdir()
    (folder / "private.env").write_text("# the private zone\nAWS_ACCESS_KEY_ID='private-key'\n"
                                        "SHOPRANK_PSEUDONYM_KEY=\"secret\"\nSHOPRANK_HOME=/private/home\n")
    (folder / "public.env").write_text("AWS_ACCESS_KEY_ID=public-key\n")
    return folder


def test_a_zone_process_gets_its_own_credentials_and_never_the_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "callers-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "callers-secret")
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY", "callers-pseudonym-key")
    settings = load_settings(zone_env_dir=str(zone_dir(tmp_path)))
    private = zone_environment("private", settings)
    assert private["AWS_ACCESS_KEY_ID"] == "private-key" and private["SHOPRANK_PSEUDONYM_KEY"] == "secret"
    assert "AWS_SECRET_ACCESS_KEY" not in private and private["SHOPRANK_ZONE"] == "private"
    public = zone_environment("public", settings)
    assert public["AWS_ACCESS_KEY_ID"] == "public-key"
    assert not {"SHOPRANK_PSEUDONYM_KEY", "AWS_SECRET_ACCESS_KEY"} & set(public)  # no key on the public side


def test_without_enforcement_the_child_keeps_this_machines_settings(monkeypatch):
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY", "local-key")
    env = zone_environment("private", load_settings())
    assert env["SHOPRANK_PSEUDONYM_KEY"] == "local-key" and env["SHOPRANK_ZONE"] == "private"
    assert set(ZONE_BOUND_VARS) & set(os.environ) <= set(env)


def test_env_files_name_a_broken_line(tmp_path):
    path = tmp_path / "x.env"
    path.write_text("GOOD=1\nno equals sign here\n")
    with pytest.raises(ValueError, match=r"x.env:2: expected KEY=VALUE"):
        read_env_file(path)


def test_a_missing_zone_file_is_named(tmp_path):
    settings = load_settings(zone_env_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no private.env in the zone env folder"):
        zone_environment("private", settings)


def test_a_private_tasks_error_comes_back_with_its_kind_and_its_story_stays_private(home, capfd):
    """The child's exception class is the caller's to judge (a gate failure is not retried); what
    it printed, the traceback included, is in the private zone's log, not the caller's output."""
    with pytest.raises(PrivateTaskFailed) as failed:
        run_private("publish", start="2024-01-01", end="2024-01-02")  # nothing was staged
    assert failed.value.task == "publish" and failed.value.kind == "FileNotFoundError"
    log = failed.value.message.split("the private zone's log: ")[1]
    assert "no _staged.json there" in open(log).read()
    assert "Traceback" not in capfd.readouterr().out + capfd.readouterr().err


def test_a_gate_failure_is_shown_by_its_failing_checks_only():
    from types import SimpleNamespace

    from shoprank.orchestration.zone_runner import safe_message
    from shoprank.validation import GateFailed

    finding = SimpleNamespace(table="events", check="price.positive", samples=("user_id=0042 price=-1",))
    result = SimpleNamespace(summary="events price.positive: user_id=0042 price=-1",
                             failures=[finding])
    message = safe_message(GateFailed(result), None)
    assert message == "the gate refused the batch: 1 failing check(s) ['events.price.positive']"
    assert "0042" not in message


def test_an_unknown_task_is_refused(home):
    with pytest.raises(ValueError, match="unknown private task 'drop_tables'"):
        run_private("drop_tables")
