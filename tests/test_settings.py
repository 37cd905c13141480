import pytest

from shoprank.settings import load_settings


def test_local_profile_resolves_under_home(home):
    settings = load_settings()
    assert settings.profile == "local"
    assert settings.store == str(home / "store")
    assert settings.models == str(home / "store" / "models")
    assert settings.resolve(settings.feast_online_store) == f"sqlite:///{home / 'feast' / 'online.db'}"
    assert settings.kfp_host == ""


def test_environment_overrides_profile(home, monkeypatch):
    monkeypatch.setenv("SHOPRANK_STORE_ROOT", "s3://bucket/prefix")
    monkeypatch.setenv("SHOPRANK_KFP_HOST", "http://kfp:8888")
    settings = load_settings()
    assert settings.store == "s3://bucket/prefix"  # URLs pass through untouched
    assert settings.kfp_host == "http://kfp:8888"


def test_cluster_profile_points_at_services(home, monkeypatch):
    monkeypatch.setenv("SHOPRANK_PROFILE", "cluster")
    settings = load_settings()
    assert settings.store.startswith("s3://")
    assert settings.feast_online_store.startswith("redis://")
    assert settings.kfp_host.startswith("http")


def test_unknown_profile_is_a_clear_error(home):
    with pytest.raises(ValueError, match="unknown settings profile 'staging'.*cluster.*local"):
        load_settings("staging")


def test_as_env_round_trips(home, monkeypatch):
    settings = load_settings(kfp_host="http://x")
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == settings
