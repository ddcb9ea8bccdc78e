"""API keys: how they look, how they are hashed, checked, cached and scoped.

Keys are 256-bit random strings (``clk_`` + 43 URL-safe characters). Only their SHA-256
is stored. A slow password hash (argon2, bcrypt) exists to make guessing a *low-entropy*
secret expensive; guessing a 256-bit random key is infeasible at any speed, so a slow
hash would add ~50 ms of CPU to every cache miss and buy nothing. The fast hash also lets
the database find a key by an indexed equality lookup instead of trying every row.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from fastapi import Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from closeloop_gateway.errors import ProblemError, unavailable
from closeloop_gateway.limits import RateLimiter
from closeloop_gateway.metrics import AUTH_FAILURES, RATE_LIMITED
from closeloop_shared.db.engine import DATABASE_UNAVAILABLE_ERRORS
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

KEY_PREFIX = "clk_"
MAX_KEY_CHARS = 256
# RFC 6750 b64token: what may follow "Bearer " (and what the bootstrap key may contain).
TOKEN_PATTERN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    DBAPIError,
    PoolTimeoutError,
    OSError,
)


class Scope(StrEnum):
    FEEDBACK_WRITE = "feedback:write"
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    # Manages API keys, and implies every other scope.
    ADMIN = "admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str | bytes) -> str:
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()


def display_prefix(key: str) -> str:
    """Enough of a key to recognise it in a list, far too little to help guess it."""
    return key[:12] if key.startswith(KEY_PREFIX) else key[:4]


def is_well_formed(key: str | bytes) -> bool:
    raw = key.encode() if isinstance(key, str) else key
    return 0 < len(raw) <= MAX_KEY_CHARS and TOKEN_PATTERN.fullmatch(raw) is not None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one API key."""

    id: uuid.UUID
    name: str
    scopes: frozenset[Scope]
    # X-Closeloop-Principal / X-Closeloop-Actor for the services behind the gateway,
    # rendered once per cached key rather than once per request.
    upstream_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Key names are restricted to printable ASCII (schemas.ApiKeyCreate), so they are
        # safe header values as they are.
        headers = (
            (b"x-closeloop-principal", str(self.id).encode()),
            (b"x-closeloop-actor", self.name.encode()),
        )
        object.__setattr__(self, "upstream_headers", headers)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


def parse_scopes(values: list[str]) -> frozenset[Scope]:
    """Scopes from the database; one this version does not know grants nothing."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(value) for value in values if value in known)


FailureReason = Literal["missing", "malformed", "invalid", "insufficient_scope"]


def _unauthorized(reason: FailureReason, detail: str) -> ProblemError:
    AUTH_FAILURES.labels(reason).inc()
    challenge = b"Bearer" if reason == "missing" else b'Bearer error="invalid_token"'
    return ProblemError(401, "unauthorized", detail, headers=[(b"www-authenticate", challenge)])


def parse_bearer(authorization: bytes | None) -> bytes:
    """The key from ``Authorization: Bearer <key>``, or a 401."""
    if not authorization:
        raise _unauthorized("missing", "An API key is required: Authorization: Bearer <key>.")
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not is_well_formed(token):
        raise _unauthorized("malformed", "The Authorization header is not 'Bearer <key>'.")
    return token


KeyLookup = Callable[[str], Awaitable[Principal | None]]


class KeyCache:
    """Key hash → principal (or "no such active key"), remembered for ``ttl_s`` seconds.

    The hot path then costs one SHA-256 and one dict lookup. The price: a revoked key
    keeps working for up to ``ttl_s`` on replicas other than the one that revoked it.
    Misses are cached too, so a client hammering with a wrong key does not hammer the
    database; the bound on entries keeps random keys from growing memory without limit.
    Concurrent misses for one key share a single database query.
    """

    def __init__(
        self,
        lookup: KeyLookup,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._max_entries = max(1, max_entries)
        self._clock = clock
        self._entries: dict[str, tuple[Principal | None, float]] = {}
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}

    async def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is not None:
            principal, expires_at = entry
            if expires_at > self._clock():
                return principal
            del self._entries[key_hash]
        pending = self._inflight.get(key_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key_hash))
            self._inflight[key_hash] = pending
            pending.add_done_callback(lambda done: self._settle(key_hash, done))
        # shield: one caller going away (client disconnect) must not cancel the query the
        # other callers wait for.
        return await asyncio.shield(pending)

    async def _load(self, key_hash: str) -> Principal | None:
        principal = await self._lookup(key_hash)
        if self._ttl_s > 0:
            if len(self._entries) >= self._max_entries:
                # Dicts keep insertion order: drop the oldest entry.
                del self._entries[next(iter(self._entries))]
            self._entries[key_hash] = (principal, self._clock() + self._ttl_s)
        return principal

    def _settle(self, key_hash: str, done: asyncio.Future[Principal | None]) -> None:
        self._inflight.pop(key_hash, None)
        if not done.cancelled():
            # Mark a failure as seen even if every waiter has gone, so asyncio does not
            # log "exception was never retrieved"; the waiters (if any) still get it.
            done.exception()

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop a revoked key here at once (other replicas notice within the TTL)."""
        for key_hash, (principal, _) in list(self._entries.items()):
            if principal is not None and principal.id == key_id:
                del self._entries[key_hash]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class Authorized:
    principal: Principal
    # RateLimit-Policy / RateLimit headers for the response.
    response_headers: list[tuple[bytes, bytes]]


class Guard:
    """Authenticate the key, check its scope, charge its rate limit: every keyed request."""

    def __init__(self, keys: KeyCache, limiter: RateLimiter | None, retry_after_s: int) -> None:
        self.keys = keys
        self.limiter = limiter
        self._retry_after_s = retry_after_s

    async def authorize(self, authorization: bytes | None, scope: Scope) -> Authorized:
        token = parse_bearer(authorization)
        key_hash = hash_key(token)
        try:
            principal = await self.keys.get(key_hash)
        except DATABASE_ERRORS as error:
            log.warning("api_key_lookup_failed", error=type(error).__name__)
            raise unavailable(
                "API keys cannot be checked right now; retry later.", self._retry_after_s
            ) from None
        if principal is None:
            raise _unauthorized("invalid", "The API key is unknown or revoked.")
        if not principal.allows(scope):
            AUTH_FAILURES.labels("insufficient_scope").inc()
            raise ProblemError(
                403,
                "forbidden",
                f"This API key lacks the '{scope.value}' scope.",
                headers=[
                    (
                        b"www-authenticate",
                        f'Bearer error="insufficient_scope", scope="{scope.value}"'.encode(),
                    )
                ],
                required_scope=scope.value,
            )
        if self.limiter is None:
            return Authorized(principal, [])
        decision = self.limiter.acquire(principal.id)
        headers = self.limiter.headers(decision)
        if not decision.allowed:
            RATE_LIMITED.inc()
            raise ProblemError(
                429,
                "rate_limited",
                "Too many requests for this API key; slow down.",
                headers=[*headers, (b"retry-after", str(decision.retry_after_s).encode())],
            )
        return Authorized(principal, headers)


def guard_of(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


def authorization_header(request: Request) -> bytes | None:
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


def require(scope: Scope) -> Callable[[Request], Awaitable[Authorized]]:
    """A FastAPI dependency: the caller's key, checked for ``scope`` and charged."""

    async def dependency(request: Request) -> Authorized:
        return await guard_of(request).authorize(authorization_header(request), scope)

    dependency.__name__ = f"require_{scope.name.lower()}"
    return dependency


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison for secrets (or their hashes) held in memory."""
    return hmac.compare_digest(a.encode(), b.encode())
