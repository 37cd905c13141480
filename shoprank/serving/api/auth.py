"""Who is calling the public API, and what they may do.

Two kinds of credential, either or both on one request:
- a shopper token (`Authorization: Bearer <JWT>`), issued in the private zone for one shopper's
  session: its subject is the shopper's pseudonym. It lets the API personalise for that shopper,
  take their events and their privacy choices. It never lets anyone post a purchase.
- a server-to-server API key (`X-API-Key`), stored hashed, with scopes: `read` (personalise for a
  pseudonym the caller names), `events:write` (post events naming shoppers by pseudonym),
  `events:purchase` (the order system: purchases), `admin` (queue an erasure; implies every scope).
A request with neither is anonymous: it gets non-personalised lists and nothing else.

Every identified request is also counted against its rate limits (per key, per shopper; anonymous
per client address when configured), shared by every worker and pod through Redis. The verdicts are
HTTP errors that name the reason: 401 (no or bad credential, a forgotten shopper's token), 403 (the
credential lacks the scope), 429 (over a limit, with `Retry-After`).
"""

from __future__ import annotations

__all__ = ["ANY_KEY", "Gatekeeper", "Who"]

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request

from shoprank.identity import request_ids
from shoprank.identity.api_keys import ApiKeys, Caller, InvalidKey
from shoprank.identity.rate_limits import RateLimiter
from shoprank.identity.tokens import LEEWAY_S, InvalidToken, Shopper, TokenVerifier
from shoprank.serving.api.privacy import PrivacyLists
from shoprank.serving.api.users import ANY_KEY
from shoprank.settings import Settings

#: After the rate limits' Redis fails, requests are served uncounted this long before it is asked again.
LIMITS_RETRY_S = 5.0
TOKEN_CACHE_SIZE = 50_000  # verified tokens kept per process (a session's token is sent with each request)
#: Every route: who owns it (calls it by design) and the scope it needs ("none": no credential, what
#: it answers is the same for anyone; the internal port's routes are reachable from the cluster's
#: monitoring only). `create_app` refuses to start with a route missing here.
ROUTE_ACCESS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/recommend"): ("the shop's front end and backend", "none; a shopper token or `read` personalises"),
    ("GET", "/search"): ("the shop's front end and backend", "none; a shopper token or `read` personalises"),
    ("GET", "/similar/{item_id}"): ("the shop's front end (item pages)", "none"),
    ("GET", "/bought-together/{item_id}"): ("the shop's front end (item pages, basket)", "none"),
    ("PUT", "/catalogue/availability"): ("the shop's stock and pricing system", "admin"),
    ("PUT", "/catalogue/items"): ("the shop's catalogue system, merchandisers", "admin"),
    ("GET", "/merchandising/rules"): ("merchandisers", "admin"),
    ("PUT", "/merchandising/rules"): ("merchandisers", "admin"),
    ("POST", "/events"): ("the shop's front end (token), its backend and order system (key)", "events:write"),
    ("GET", "/privacy/opt-out"): ("the shopper (their own token)", "privacy"),
    ("POST", "/privacy/opt-out"): ("the shopper (their own token)", "privacy"),
    ("DELETE", "/privacy/opt-out"): ("the shopper (their own token)", "privacy"),
    ("POST", "/admin/privacy/forget"): ("the shop's privacy desk", "admin"),
    ("GET", "/healthz"): ("the kubelet (liveness)", "none"),
    ("GET", "/readyz"): ("the kubelet (readiness), internal port", "none"),
    ("GET", "/metrics"): ("Prometheus, internal port", "none"),
}

#: What a shopper's own token may do (never `events:purchase`, never `admin`).
SHOPPER_SCOPES = frozenset({"read", "events:write", "privacy"})


@dataclass(frozen=True)
class Who:
    """The caller of one request: an API key's caller (or None), the shopper of a token (or None)."""

    caller: str | None
    key_id: str | None
    key_scopes: frozenset[str]
    shopper: Shopper | None

    @property
    def anonymous(self) -> bool:
        return self.caller is None and self.shopper is None

    @property
    def label(self) -> str:
        return self.caller or ("shopper" if self.shopper is not None else "anonymous")

    def may(self, scope: str) -> bool:
        if self.key_may(scope):
            return True
        return self.shopper is not None and scope in SHOPPER_SCOPES

    def key_may(self, scope: str) -> bool:
        """The API key itself has `scope` (whatever a shopper token beside it may do)."""
        return "admin" in self.key_scopes or scope in self.key_scopes

    def pseudonyms(self) -> dict[str, str] | None:
        """The token's shopper as key id -> pseudonym (None without a token)."""
        return dict(self.shopper.pseudonyms) if self.shopper is not None else None


def _error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, {"reason": reason, "message": message}, headers=headers)


def unauthorised(reason: str, message: str) -> HTTPException:
    return _error(401, reason, message, {"WWW-Authenticate": 'Bearer realm="shoprank"'})


def forbidden(scope: str, who: Who) -> HTTPException:
    return _error(403, "missing_scope", f"this route needs scope `{scope}`; the {who.label} credential "
                                        f"does not have it")


def read_or_create_secret(path: Path) -> bytes:
    """The request-id secret: a mounted Secret on the cluster; locally made once (every worker then
    reads the same file: the first to create it wins, the others read it)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    for _ in range(50):  # another worker may be between its create and its write
        value = path.read_text().strip()
        if value:
            return value.encode()
        time.sleep(0.01)
    raise RuntimeError(f"the request-id secret {path} is empty")


class KeyFile:
    """The API key file, re-read when it changes, without a restart: a key created works at once (an
    unknown key makes it look again), a key revoked stops within `check_s` seconds."""

    def __init__(self, path: Path, check_s: float = 5.0) -> None:
        self.path, self.check_s = path, check_s
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._keys = ApiKeys(path)
        self._lock = threading.Lock()

    def keys(self, now_too: bool = False) -> ApiKeys:
        """The keys, re-read if the file changed (checked every `check_s` seconds; `now_too`: now)."""
        now = time.monotonic()
        if now_too or now - self._checked > self.check_s:
            with self._lock:
                self._checked = now
                try:  # a new file each save (written, then renamed): its inode says so within one tick
                    info = self.path.stat()
                    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
                except OSError:
                    stamp = None
                if stamp != self._stamp:
                    try:
                        self._keys, self._stamp = ApiKeys(self.path), stamp
                    except (OSError, ValueError) as err:  # a broken file: the keys read last stay in force
                        print(f"online API: API key file {self.path} not re-read: {type(err).__name__}: {err}",
                              flush=True)
        return self._keys

    def verify(self, key: str) -> Caller:
        """The key's caller; a key not found is looked up again in a file changed since it was read,
        so a key just created works at once (a revoked one stops within `check_s`)."""
        try:
            return self.keys().verify(key)
        except InvalidKey:
            return self.keys(now_too=True).verify(key)


class Gatekeeper:
    def __init__(self, settings: Settings, privacy: PrivacyLists | None = None) -> None:
        self.settings = settings
        self.privacy = privacy
        paths = [Path(settings.resolve(p.strip())) for p in settings.token_public_keys.split(",") if p.strip()]
        present = [p for p in paths if p.is_file()]
        self.verifier = TokenVerifier.from_files(present) if present else None
        self.no_verifier = None if present else (
            f"no token verification key at {', '.join(map(str, paths)) or '(none configured)'}")
        self.key_file = KeyFile(Path(settings.resolve(settings.api_keys_file)))
        self.request_secret = read_or_create_secret(Path(settings.resolve(settings.request_id_key)))
        redis_url = settings.rate_limit_redis

        def limiter(per_min: int, name: str) -> RateLimiter | None:
            return RateLimiter(per_min, 60, redis_url, f"shoprank:rate:{name}") if per_min > 0 else None

        self._limits_down_until = 0.0  # the limits' store failed: not asked until then
        self._tokens: dict[str, Shopper] = {}  # verified tokens, oldest first
        self.per_key = limiter(settings.rate_limit_key_per_min, "key")
        self.per_subject = limiter(settings.rate_limit_subject_per_min, "subject")
        self.per_address = limiter(settings.rate_limit_anonymous_per_min, "address")

    def _verified(self, token: str) -> Shopper:
        """The token's shopper, from the cache of tokens this process verified (an Ed25519 check is
        the costliest part of a request's authentication, and a session sends the same token for
        every request); a cached token is served only until it expires, as a fresh check would."""
        cached = self._tokens.get(token)
        if cached is not None and cached.expires_at + LEEWAY_S >= time.time():
            return cached
        shopper = self.verifier.verify(token)  # type: ignore[union-attr]
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.pop(next(iter(self._tokens)))  # the oldest entry: a FIFO bound on memory
        self._tokens[token] = shopper
        return shopper

    async def identify(self, request: Request) -> Who:
        """The caller, verified and counted; raises 401 or 429 naming why."""
        caller = key_id = None
        scopes: frozenset[str] = frozenset()
        api_key = request.headers.get("x-api-key")
        if api_key is not None:
            try:
                found = self.key_file.verify(api_key.strip())
            except InvalidKey as err:
                raise unauthorised("invalid_api_key", str(err)) from None
            caller, key_id, scopes = found.name, found.key_id, found.scopes
        shopper = None
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorised("invalid_token", "expected `Authorization: Bearer <token>`")
            if self.verifier is None:
                raise unauthorised("invalid_token", "this API cannot verify shopper tokens (no verification key "
                                                    "is installed)")
            try:
                shopper = self._verified(token.strip())
            except InvalidToken as err:
                raise unauthorised("invalid_token", str(err)) from None
            if self.privacy is not None and self.privacy.is_erased(p for _, p in shopper.pseudonyms):
                raise unauthorised("forgotten", "this shopper's data was erased; tokens for them are no longer "
                                                "accepted")
        who = Who(caller, key_id, scopes, shopper)
        state = request.state
        state.caller = who.label if key_id is None else f"{who.label}:{key_id}"
        state.subject = shopper.subject if shopper is not None else None
        await self._limit(who, request)
        return who

    async def _limit(self, who: Who, request: Request) -> None:
        checks: list[tuple[RateLimiter | None, str, str]] = []
        if who.key_id is not None:
            checks.append((self.per_key, who.key_id, "this API key"))
        if who.shopper is not None:
            checks.append((self.per_subject, who.shopper.subject, "this shopper"))
        if who.anonymous and request.client is not None:
            checks.append((self.per_address, request.client.host, "this address"))
        for limiter, key, whom in checks:
            if limiter is None or time.monotonic() < self._limits_down_until:
                continue
            try:
                verdict = await limiter.hit_async(key)
            except Exception as err:  # noqa: BLE001 - Redis down: serve (a limiter outage is no outage)
                # and stop asking for a while: a Redis that hangs would otherwise hold every request
                # of every route up to its timeout
                self._limits_down_until = time.monotonic() + LIMITS_RETRY_S
                print(f"online API: rate limits not counted for {LIMITS_RETRY_S:.0f} s ({type(err).__name__}: {err})",
                      flush=True)
                continue
            if not verdict.allowed:
                raise _error(429, "rate_limited", f"too many requests for {whom}: at most {limiter.limit} per "
                                                  f"{limiter.window_s} s", {"Retry-After": str(verdict.retry_after_s)})

    @staticmethod
    def require(who: Who, scope: str) -> None:
        if who.anonymous:
            raise unauthorised("unauthenticated", f"this route needs a shopper token or an API key with scope "
                                                  f"`{scope}`")
        if not who.may(scope):
            raise forbidden(scope, who)

    def request_id(self, subject: str | None) -> str:
        """A new request id, signed for the list's subject ("" for an anonymous list)."""
        return request_ids.issue(subject or "", self.request_secret)
