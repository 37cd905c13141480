import pandas as pd
import pytest

from shoprank.features.pseudonymise import (
    PUBLIC_EVENT_COLUMNS,
    MissingKeyError,
    create_key,
    load_key,
    load_keys,
    pseudonym,
    to_public_interactions,
)


def _events() -> pd.DataFrame:
    return pd.DataFrame({
        "event_time": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        "user_id": ["alice@example.com", "bob", "alice@example.com"],
        "item_id": ["i1", None, "i2"],
        "event_type": ["purchase", "search", "view"],
        "price": [1.0, None, 2.0], "quantity": [1, None, 1],
        "session_id": ["s1", "s2", "s3"], "query": [None, "red shoes for alice", None],
    })


def test_public_interactions_carry_no_raw_ids_or_free_text():
    public = to_public_interactions(_events(), b"secret")
    assert list(public.columns) == PUBLIC_EVENT_COLUMNS
    flat = public.astype(str).to_numpy().ravel().tolist()
    assert not any("alice" in v or "bob" in v or "shoes" in v for v in flat)
    assert len(public) == 2  # the search event has no item: it does not cross
    assert public["user_key"].iloc[0] == pseudonym("alice@example.com", b"secret")


def test_pseudonyms_are_stable_but_keyed():
    assert pseudonym("u1", b"k1") == pseudonym("u1", b"k1")
    assert pseudonym("u1", b"k1") != pseudonym("u1", b"k2")
    assert pseudonym("u1", b"k1") != pseudonym("u2", b"k1")


def test_a_missing_key_is_an_error_never_a_new_random_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY_DIR", raising=False)
    with pytest.raises(MissingKeyError, match="shoprank keys create"):
        load_key(tmp_path)
    assert not (tmp_path / "secrets").exists()  # nothing was made up
    path, created = create_key(tmp_path)
    assert created and path.stat().st_mode & 0o077 == 0
    first = load_key(tmp_path)
    assert create_key(tmp_path) == (path, False) and load_key(tmp_path) == first and len(first) == 64


def test_a_mounted_secret_with_current_and_next_keys(tmp_path, monkeypatch):
    """The Kubernetes Secret (read-only, files `current` and, during a rotation, `next`)."""
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY", raising=False)
    secret = tmp_path / "secret"
    secret.mkdir()
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY_DIR", str(secret))
    with pytest.raises(MissingKeyError, match="expected a non-empty `current` file"):
        load_keys(tmp_path)
    (secret / "current").write_text("old-key\n")
    (secret / "next").write_text("new-key")
    keys = load_keys(tmp_path)
    assert [k.secret for k in keys] == [b"old-key", b"new-key"] and load_key(tmp_path) == b"old-key"
    assert keys[0].id != keys[1].id and len(keys[0].id) == 12
    assert b"old-key".hex() not in keys[0].id and "old-key" not in keys[0].id  # the id gives nothing away
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY", "env-key")  # an explicit key wins (one-off runs, tests)
    assert [k.secret for k in load_keys(tmp_path)] == [b"env-key"]


def test_the_feature_job_reads_the_key_from_secrets_manager(tmp_path, monkeypatch, s3_endpoint):
    """On the private zone's edge workers the feature job reads the secret itself (a real Secrets
    Manager API: moto's server)."""
    import json

    import boto3

    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                        ("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", s3_endpoint)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY", raising=False)
    arn = boto3.client("secretsmanager").create_secret(
        Name="shoprank/test/pseudonym-key", SecretString=json.dumps({"current": "k-now", "next": "k-later"}))["ARN"]
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY_SECRET_ARN", arn)
    assert [k.secret for k in load_keys(tmp_path)] == [b"k-now", b"k-later"]
    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY_SECRET_ARN", arn.replace("pseudonym-key", "nope"))
    with pytest.raises(MissingKeyError, match="cannot read the pseudonymisation key"):
        load_keys(tmp_path)
