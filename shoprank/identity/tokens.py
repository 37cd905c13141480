"""Shopper tokens: who the public API acts for, without it ever seeing a raw user id.

Why asymmetric: the issuer runs in the private zone, where the raw id and the pseudonymisation key
are. It signs a short-lived token whose subject is the shopper's pseudonym, with an Ed25519 key
that never leaves the private zone. The public API verifies with the public key only, so a
compromised API pod can neither mint tokens nor learn how to re-identify a shopper.

A token carries the id of the pseudonymisation key its subject was made with (`pkid`), so a key
rotation can re-issue tokens while sessions under the old key finish, and the id of the signing key
(`kid` header), so the signing key can rotate too (the verifier holds every public key it trusts).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shoprank.features.pseudonymise import PseudonymKey, pseudonym

ALGORITHM = "EdDSA"
ISSUER = "shoprank-private-issuer"
AUDIENCE = "shoprank-api"
DEFAULT_TTL_S = 30 * 60
MAX_TTL_S = 24 * 3600
LEEWAY_S = 30  # clock skew between the issuer and the API


class InvalidToken(ValueError):
    """A token that is missing, malformed, forged, expired or not for this API; the reason says which."""


@dataclass(frozen=True)
class Shopper:
    """What a verified token says: the pseudonym the API acts for, and the token's facts."""

    subject: str
    pseudonym_key_id: str
    token_id: str
    expires_at: int
    #: the shopper's pseudonym under every key the issuer held (key id -> pseudonym): during a key
    #: rotation the API serves with whichever one the online store was materialised with
    pseudonyms: tuple[tuple[str, str], ...] = ()

    def pseudonym_for(self, key_id: str) -> str | None:
        return dict(self.pseudonyms).get(key_id)


def key_id(public: Ed25519PublicKey) -> str:
    """A short public fingerprint of a signing key (the token's `kid` header)."""
    import hashlib

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:12]


def create_signing_key(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (the private one 0600, never overwritten); its key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        raise FileExistsError(f"{private_path} exists: a signing key is never overwritten (rotate with a new file)")
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = private_path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(private_path)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())


class TokenIssuer:
    """The private zone's issuer: raw id in, signed token for its pseudonym out. `pseudonym_key` is
    the current key; `other_keys` (a rotation's next key) add the shopper's pseudonym under each, so
    tokens issued during a rotation keep working when the online store switches keys."""

    def __init__(self, signing_key_pem: bytes, pseudonym_key: PseudonymKey, ttl_s: int = DEFAULT_TTL_S,
                 other_keys: tuple[PseudonymKey, ...] = ()) -> None:
        key = serialization.load_pem_private_key(signing_key_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the token signing key must be an Ed25519 private key (PEM, PKCS8)")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"token lifetime must be in (0, {MAX_TTL_S}] seconds, got {ttl_s}")
        self._key, self.kid = key, key_id(key.public_key())
        self.pseudonym_key, self.ttl_s = pseudonym_key, ttl_s
        self.other_keys = tuple(k for k in other_keys if k.id != pseudonym_key.id)

    @classmethod
    def from_settings(cls, settings, ttl_s: int = DEFAULT_TTL_S) -> TokenIssuer:
        """The issuer of this (private-zone) process: its signing key file and every pseudonymisation
        key it holds (current first)."""
        from shoprank.features.pseudonymise import load_keys

        path = Path(settings.resolve(settings.token_signing_key))
        if not path.is_file():
            raise FileNotFoundError(f"no token signing key at {path}: create one with `shoprank tokens keygen` "
                                    "(in the private zone)")
        keys = load_keys(settings.home)
        return cls(path.read_bytes(), keys[0], ttl_s, tuple(keys[1:]))

    def subject(self, user_id: str) -> str:
        return pseudonym(user_id, self.pseudonym_key.secret)

    def issue(self, user_id: str, now: float | None = None) -> str:
        if not user_id or len(user_id) > 256:
            raise ValueError("a user id is 1 to 256 characters")
        issued = int(time.time() if now is None else now)
        claims = {"sub": self.subject(user_id), "pkid": self.pseudonym_key.id, "iss": ISSUER, "aud": AUDIENCE,
                  "iat": issued, "exp": issued + self.ttl_s, "jti": uuid.uuid4().hex}
        if self.other_keys:
            claims["alt"] = {k.id: pseudonym(user_id, k.secret) for k in self.other_keys}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


class TokenVerifier:
    """The public API's verifier: public keys only."""

    def __init__(self, public_keys_pem: list[bytes]) -> None:
        self.keys: dict[str, Ed25519PublicKey] = {}
        for pem in public_keys_pem:
            key = serialization.load_pem_public_key(pem)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("a token verification key must be an Ed25519 public key (PEM)")
            self.keys[key_id(key)] = key
        if not self.keys:
            raise ValueError("no token verification key")

    @classmethod
    def from_files(cls, paths: list[Path]) -> TokenVerifier:
        return cls([Path(p).read_bytes() for p in paths])

    def verify(self, token: str, now: float | None = None) -> Shopper:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise InvalidToken(f"malformed token: {err}") from err
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"token algorithm must be {ALGORITHM}")
        key = self.keys.get(str(header.get("kid")))
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        # the times are checked here, against `now` (the caller's clock; tests pass one)
        options = {"require": ["sub", "exp", "iat", "pkid", "jti"], "verify_exp": False, "verify_iat": False}
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                options=options)
        except jwt.PyJWTError as err:
            raise InvalidToken(f"token refused: {err}") from err
        at = time.time() if now is None else now
        if not isinstance(claims["exp"], int) or claims["exp"] + LEEWAY_S < at:
            raise InvalidToken("token expired")
        if not isinstance(claims["iat"], int) or claims["iat"] - LEEWAY_S > at:
            raise InvalidToken("token issued in the future")
        alt = claims.get("alt") or {}
        if not isinstance(alt, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in alt.items()):
            raise InvalidToken("token claim `alt` must map key ids to pseudonyms")
        pseudonyms = ((str(claims["pkid"]), str(claims["sub"])), *sorted(alt.items()))
        return Shopper(str(claims["sub"]), str(claims["pkid"]), str(claims["jti"]), int(claims["exp"]), pseudonyms)
