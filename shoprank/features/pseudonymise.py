"""Pseudonymisation at the private -> public boundary.

User ids become a keyed hash (HMAC-SHA256): stable, so features join across nights, but not
reversible or recomputable without the key. The key never lives in code, and only the private zone
holds it (the private stage, the token issuer, erasure): they read it from a secret (Secrets
Manager, KMS-encrypted: `SHOPRANK_PSEUDONYM_KEY_SECRET_ARN`; or a mounted directory,
`SHOPRANK_PSEUDONYM_KEY_DIR`, with a `current` file and, during a rotation, a `next` one),
`SHOPRANK_PSEUDONYM_KEY` for one-off runs, or locally a file under SHOPRANK_HOME that `shoprank keys
create` writes once. The public API never holds it: shoppers reach it as pseudonyms, in signed
tokens. A missing key is an error that says where it was looked for: a new random key would
silently turn every known user into a stranger.

Each key has an id (a fingerprint that reveals nothing of the key). The feature job records the id
of the key the online store was materialised with; a shopper token carries the pseudonym under
every key its issuer holds, and the API uses the one of that id, so a rotation (new key as `next`,
re-materialise, drop the old one) switches the API exactly when the store switches. Everything
personal beyond the id (age group, region, session ids, search text) is dropped, not hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shoprank.data.search_log import scrub, session_queries

KEY_ENV = "SHOPRANK_PSEUDONYM_KEY"
KEY_DIR_ENV = "SHOPRANK_PSEUDONYM_KEY_DIR"
KEY_SECRET_ENV = "SHOPRANK_PSEUDONYM_KEY_SECRET_ARN"  # the feature job on the private zone's edge workers
KEY_FILES = ("current", "next")  # in the key directory: the key in use, and the one a rotation moves to


class MissingKeyError(RuntimeError):
    """No pseudonymisation key where this process looks for one."""


@dataclass(frozen=True)
class PseudonymKey:
    secret: bytes
    source: str

    @property
    def id(self) -> str:
        """A public fingerprint of the key (not the key, not enough to recompute pseudonyms)."""
        return hashlib.sha256(b"shoprank-pseudonym-key-id:" + self.secret).hexdigest()[:12]


def key_file(home: Path) -> Path:
    return Path(home) / "secrets" / "pseudonym.key"


def load_keys(home: Path) -> list[PseudonymKey]:
    """Every key this process may use, the current one first: the environment variable, else the
    Secrets Manager secret, else the mounted key directory (`current`, then `next`), else the local
    key file. Raises MissingKeyError."""
    if os.environ.get(KEY_ENV):
        return [PseudonymKey(os.environ[KEY_ENV].encode(), f"${KEY_ENV}")]
    if os.environ.get(KEY_SECRET_ENV):
        return _keys_from_secrets_manager(os.environ[KEY_SECRET_ENV])
    key_dir = os.environ.get(KEY_DIR_ENV)
    if key_dir:
        paths = [Path(key_dir) / name for name in KEY_FILES]
        found = [PseudonymKey(p.read_text().strip().encode(), str(p)) for p in paths
                 if p.is_file() and p.read_text().strip()]
        if not found:
            raise MissingKeyError(f"no pseudonymisation key in {key_dir} (${KEY_DIR_ENV}): expected a non-empty "
                                  f"`current` file (the Kubernetes Secret synced from Secrets Manager)")
        return found
    path = key_file(home)
    if not path.exists():
        raise MissingKeyError(
            f"no pseudonymisation key: set ${KEY_ENV}, mount the key Secret at ${KEY_DIR_ENV}, or create a local "
            f"one with `shoprank keys create` ({path}). A new random key is never made up here: it would turn "
            f"every known user into a stranger.")
    return [PseudonymKey(path.read_text().strip().encode(), str(path))]


def _keys_from_secrets_manager(arn: str) -> list[PseudonymKey]:
    """The secret's JSON (`{"current": ..., "next": ...}`), read with this process's own role."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    except (BotoCoreError, ClientError, ValueError, KeyError) as err:
        raise MissingKeyError(f"cannot read the pseudonymisation key {arn} (${KEY_SECRET_ENV}): {err}") from err
    found = [PseudonymKey(str(value[name]).encode(), f"{arn}#{name}") for name in KEY_FILES if value.get(name)]
    if not found:
        raise MissingKeyError(f"the pseudonymisation key secret {arn} has no `current` key")
    return found


def load_key(home: Path) -> bytes:
    """The current key (the feature job pseudonymises with it)."""
    return load_keys(home)[0].secret


def current_key(home: Path) -> PseudonymKey:
    return load_keys(home)[0]


def create_key(home: Path) -> tuple[Path, bool]:
    """Write a new local key file if there is none (never overwrites); (path, created)."""
    path = key_file(home)
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secrets.token_hex(32))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path, True


def pseudonym(user_id: str, key: bytes) -> str:
    """The public-zone key of one user (used online, so the API can look features up)."""
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:20]


def pseudonymise_ids(user_ids: pd.Series, key: bytes) -> pd.Series:
    """Hash each distinct id once: Ta Feng has 32k users but 817k rows."""
    uniques = pd.unique(user_ids)
    mapping = {u: pseudonym(str(u), key) for u in uniques}
    return user_ids.map(mapping)


PUBLIC_EVENT_COLUMNS = ["user_key", "item_id", "event_type", "event_time", "price", "quantity"]


def to_public_interactions(events: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Events as they may cross the link: keyed user id, no session, no query text."""
    public = events.loc[events["item_id"].notna(), ["item_id", "event_type", "event_time", "price", "quantity"]]
    public.insert(0, "user_key", pseudonymise_ids(events.loc[public.index, "user_id"], key))
    return public[PUBLIC_EVENT_COLUMNS].reset_index(drop=True)


PUBLIC_IMPRESSION_COLUMNS = ["user_key", "item_id", "event_time", "position", "clicked", "rule_placed"]


def to_public_impressions(feedback: pd.DataFrame, key: bytes,
                          rule_placed: set[tuple[str, str]] | frozenset = frozenset()) -> pd.DataFrame:
    """What the served lists showed (`served/events` impressions), as it may cross the link: keyed
    user id, item, time, position (as displayed: the front end reports where the shopper saw it),
    whether the same list's item was clicked, and whether a merchandising rule put it there
    (`rule_placed`: its (request id, item) is in the set; see `data.served.rule_placed_items`); no
    request or session id (they would link a shopper's requests in the public zone)."""
    shown = feedback[feedback["event_type"] == "impression"]
    if shown.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            PUBLIC_IMPRESSION_COLUMNS, ["object", "object", "datetime64[us, UTC]", "int64", "bool", "bool"],
            strict=True)})
    clicks = feedback[feedback["event_type"] == "click"]
    clicked = set(zip(clicks["request_id"], clicks["item_id"], strict=True))
    public = shown[["item_id", "event_time", "position"]].copy()
    public["clicked"] = [(r, i) in clicked for r, i in zip(shown["request_id"], shown["item_id"], strict=True)]
    public["rule_placed"] = [(r, i) in rule_placed for r, i in zip(shown["request_id"], shown["item_id"],
                                                                   strict=True)]
    public.insert(0, "user_key", pseudonymise_ids(shown["user_id"], key))
    public["position"] = public["position"].astype("int64")
    return public[PUBLIC_IMPRESSION_COLUMNS].reset_index(drop=True)


PUBLIC_QUERY_COLUMNS = ["user_key", "query_id", "event_time", "query", "item_id", "relevance"]


def to_public_queries(events: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """The search log as it may cross the link: each query with what its session did next, the user
    keyed, the query id keyed (it is derived from the session id), and the query text scrubbed of
    emails, phone numbers and long digit runs (`data.search_log.scrub`)."""
    queries = session_queries(events)
    if queries.empty:
        return pd.DataFrame(columns=PUBLIC_QUERY_COLUMNS)
    queries.insert(0, "user_key", pseudonymise_ids(queries.pop("user_id"), key))
    queries["query_id"] = pseudonymise_ids(queries["query_id"], key)
    texts = pd.unique(queries["query"])
    queries["query"] = queries["query"].map({t: scrub(t) for t in texts})
    return queries[PUBLIC_QUERY_COLUMNS].reset_index(drop=True)
