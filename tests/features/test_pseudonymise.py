import pandas as pd

from shoprank.features.pseudonymise import PUBLIC_EVENT_COLUMNS, load_key, pseudonym, to_public_interactions


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


def test_key_file_is_created_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPRANK_PSEUDONYM_KEY", raising=False)
    first = load_key(tmp_path)
    assert load_key(tmp_path) == first and len(first) == 64
    assert (tmp_path / "secrets" / "pseudonym.key").stat().st_mode & 0o077 == 0
