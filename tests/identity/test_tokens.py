"""Shopper tokens: signed in the private zone with Ed25519, verified in the public one with the
public key only; forged, expired, foreign or tampered tokens are refused with a reason."""

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shoprank.features.pseudonymise import PseudonymKey, pseudonym
from shoprank.identity.tokens import InvalidToken, TokenIssuer, TokenVerifier, create_signing_key

KEY = PseudonymKey(b"pseudonym-secret", "test")


@pytest.fixture
def keys(tmp_path):
    create_signing_key(tmp_path / "private" / "signing.pem", tmp_path / "public" / "signing.pub.pem")
    issuer = TokenIssuer((tmp_path / "private" / "signing.pem").read_bytes(), KEY, ttl_s=600)
    verifier = TokenVerifier.from_files([tmp_path / "public" / "signing.pub.pem"])
    return issuer, verifier


def test_the_subject_is_the_pseudonym_never_the_raw_id(keys):
    issuer, verifier = keys
    token = issuer.issue("customer-42", now=1_000_000)
    shopper = verifier.verify(token, now=1_000_100)
    assert shopper.subject == pseudonym("customer-42", KEY.secret) and shopper.pseudonym_key_id == KEY.id
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert "customer-42" not in json.dumps(payload)


def _pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_a_token_signed_with_another_key_is_refused(keys):
    _, verifier = keys
    other = TokenIssuer(_pem(Ed25519PrivateKey.generate()), KEY)
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(other.issue("customer-42"))


def test_a_retired_signing_key_still_verifies_while_the_verifier_trusts_it(tmp_path):
    """Rotation: the verifier holds the old and the new public key while old tokens run out."""
    create_signing_key(tmp_path / "old.pem", tmp_path / "old.pub.pem")
    create_signing_key(tmp_path / "new.pem", tmp_path / "new.pub.pem")
    verifier = TokenVerifier.from_files([tmp_path / "old.pub.pem", tmp_path / "new.pub.pem"])
    for name in ("old", "new"):
        token = TokenIssuer((tmp_path / f"{name}.pem").read_bytes(), KEY).issue("c")
        assert verifier.verify(token).subject == pseudonym("c", KEY.secret)


def test_a_tampered_subject_is_refused(keys):
    issuer, verifier = keys
    header, payload, signature = issuer.issue("customer-42").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = pseudonym("someone-else", KEY.secret)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(InvalidToken, match="refused"):
        verifier.verify(f"{header}.{forged}.{signature}")


def test_none_and_hmac_algorithms_are_refused(keys):
    _, verifier = keys
    claims = {"sub": "x", "exp": 2_000_000_000, "iat": 1, "pkid": "k", "jti": "j", "aud": "shoprank-api",
              "iss": "shoprank-private-issuer"}
    for token in (jwt.encode(claims, None, algorithm="none"), jwt.encode(claims, b"s" * 32, algorithm="HS256")):
        with pytest.raises(InvalidToken, match="algorithm must be EdDSA"):
            verifier.verify(token)


def test_an_expired_token_is_refused(keys):
    issuer, verifier = keys
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(issuer.issue("customer-42", now=1_000_000))


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "é" * 5])
def test_garbage_is_refused_with_a_reason(keys, token):
    _, verifier = keys
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_a_signing_key_is_never_overwritten(tmp_path):
    create_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        create_signing_key(tmp_path / "k.pem", tmp_path / "k.pub.pem")


def test_the_command_line_issues_tokens_the_verifier_accepts(home, capsys, monkeypatch):
    from shoprank.cli import main
    from shoprank.settings import load_settings

    monkeypatch.setenv("SHOPRANK_PSEUDONYM_KEY", "cli-key")
    assert main(["tokens", "keygen"]) == 0 and main(["tokens", "keygen"]) == 1  # never overwritten
    capsys.readouterr()
    assert main(["tokens", "issue", "customer-7", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    settings = load_settings()
    verifier = TokenVerifier.from_files([settings.resolve(settings.token_public_keys)])
    assert verifier.verify(token).subject == pseudonym("customer-7", b"cli-key")


def test_a_token_issued_during_a_key_rotation_serves_under_either_key(tmp_path):
    """Issued while the issuer holds the current and the next pseudonymisation key, the token names
    the shopper under both; the online path picks the pseudonym of the key the store was
    materialised with, so a session in flight survives the store's switch."""
    from shoprank.serving.api.users import Shoppers

    nxt = PseudonymKey(b"next-secret", "next")
    create_signing_key(tmp_path / "signing.pem", tmp_path / "signing.pub.pem")
    issuer = TokenIssuer((tmp_path / "signing.pem").read_bytes(), KEY, ttl_s=600, other_keys=(nxt,))
    shopper = TokenVerifier.from_files([tmp_path / "signing.pub.pem"]).verify(issuer.issue("customer-9"))
    assert shopper.subject == pseudonym("customer-9", KEY.secret)
    assert shopper.pseudonym_for(nxt.id) == pseudonym("customer-9", nxt.secret)
    subject = dict(shopper.pseudonyms)
    chooser = Shoppers.__new__(Shoppers)  # only its key choice, no feature store
    for materialised, expected in ((KEY.id, shopper.subject), (nxt.id, pseudonym("customer-9", nxt.secret)),
                                   ("retired-key", None)):
        chooser.key_id = materialised
        assert chooser.user_key(subject) == expected


def test_a_token_whose_other_pseudonyms_are_malformed_is_refused(keys):
    issuer, verifier = keys
    forged = jwt.encode({**jwt.decode(issuer.issue("x"), options={"verify_signature": False}), "alt": ["a"]},
                        issuer._key, algorithm="EdDSA", headers={"kid": issuer.kid})
    with pytest.raises(InvalidToken, match="alt"):
        verifier.verify(forged)


def test_the_issuer_remembers_whom_it_named_so_their_events_resolve(home, capsys):
    from shoprank.cli import main
    from shoprank.features.identities import known_ids
    from shoprank.settings import load_settings
    from shoprank.storage import open_for

    assert main(["tokens", "keygen"]) == 0 and main(["tokens", "issue", "brand-new-shopper"]) == 0
    assert "brand-new-shopper" in known_ids(open_for(load_settings()))
