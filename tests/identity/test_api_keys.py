"""Server-to-server API keys: stored hashed, scoped, revocable."""

import pytest

from shoprank.identity.api_keys import ApiKeys, InvalidKey


def test_a_key_is_shown_once_and_stored_only_as_its_hash(tmp_path):
    keys = ApiKeys(tmp_path / "api_keys.json")
    key = keys.create("order-system", ["events:write", "events:purchase"])
    assert key not in (tmp_path / "api_keys.json").read_text()
    assert oct((tmp_path / "api_keys.json").stat().st_mode & 0o777) == "0o600"
    caller = ApiKeys(tmp_path / "api_keys.json").verify(key)  # a fresh reader: what a new worker sees
    assert caller.name == "order-system" and caller.may("events:purchase") and not caller.may("read")


def test_admin_may_do_everything_and_read_may_not_write(tmp_path):
    keys = ApiKeys(tmp_path / "k.json")
    admin, reader = keys.verify(keys.create("ops", ["admin"])), keys.verify(keys.create("front", ["read"]))
    assert admin.may("events:purchase") and reader.may("read") and not reader.may("events:write")


def test_a_revoked_key_stops_working_and_a_rotated_one_works(tmp_path):
    keys = ApiKeys(tmp_path / "k.json")
    old = keys.create("front", ["read"])
    new = keys.create("front", ["read"])
    keys.revoke(keys.verify(old).key_id)
    with pytest.raises(InvalidKey, match="unknown or revoked"):
        ApiKeys(tmp_path / "k.json").verify(old)
    assert ApiKeys(tmp_path / "k.json").verify(new).name == "front"


@pytest.mark.parametrize("key", ["", "srk_", "not-a-key", "srk_" + "x" * 200])
def test_malformed_or_unknown_keys_are_refused(tmp_path, key):
    with pytest.raises(InvalidKey):
        ApiKeys(tmp_path / "k.json").verify(key)


def test_unknown_scopes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scopes must be some of"):
        ApiKeys(tmp_path / "k.json").create("x", ["write-everything"])
