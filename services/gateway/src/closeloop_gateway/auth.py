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
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

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
    # Report whether a customer reply was delivered (POST /v1/alerts/{id}/customer-reply):
    # the one alerts route a channel system needs, since it is the one sending the reply.
    REPLIES_WRITE = "replies:write"
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    # Manages API keys, and implies every other scope.
    ADMIN = "admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)

# Scopes a broader one includes besides ``admin`` (which includes all): whoever may work an
# alert may also report its reply, as every alerts:write key could before replies:write.
IMPLIED_BY: dict[Scope, frozenset[Scope]] = {Scope.REPLIES_WRITE: frozenset({Scope.ALERTS_WRITE})}


class Role(StrEnum):
    """What kind of caller a key belongs to; decides its scopes' ceiling and what it sees."""

    # A channel system (app backend, contact center): posts feedback and reports whether
    # the customer replies it was asked to send got through; reads no alerts.
    CHANNEL = "channel"
    # A support agent: reads and works the alerts of one team (an owner id).
    AGENT = "agent"
    # A team lead: what an agent may, plus assigning alerts within the team.
    LEAD = "lead"
    # Everything, every team; the only role that may hold the ``admin`` scope.
    ADMIN = "admin"


# The most a key of each role may hold; also what it gets when no scopes are asked for.
# Scopes can narrow a role (a read-only agent key), never widen it.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.CHANNEL: frozenset({Scope.FEEDBACK_WRITE, Scope.REPLIES_WRITE}),
    Role.AGENT: frozenset({Scope.ALERTS_READ, Scope.ALERTS_WRITE}),
    Role.LEAD: frozenset({Scope.ALERTS_READ, Scope.ALERTS_WRITE}),
    Role.ADMIN: ALL_SCOPES,
}
# Roles that act for one team and so must name it.
TEAM_ROLES = frozenset({Role.AGENT, Role.LEAD})


def legacy_role(scopes: frozenset[Scope]) -> Role:
    """The role a key from before roles existed gets (migration 0002 applies the same rule).

    A feedback-only key is a channel system's; anything else keeps seeing every alert,
    as it did, so it becomes ``admin`` -- its scopes still limit what it may do.
    """
    return Role.CHANNEL if scopes and scopes <= ROLE_SCOPES[Role.CHANNEL] else Role.ADMIN


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
    """Who is calling: one API key, its role and (agents and leads) its team."""

    id: uuid.UUID
    name: str
    scopes: frozenset[Scope]
    role: Role
    team: str | None = None
    # X-Closeloop-Principal / -Actor / -Role / -Team for the services behind the gateway
    # (the alerts service scopes what an agent sees by them), rendered once per cached
    # key rather than once per request. The proxy never forwards a client's own
    # X-Closeloop-* headers, so these are the only ones upstream sees.
    upstream_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Key names and team ids are restricted to printable ASCII (schemas.ApiKeyCreate),
        # so they are safe header values as they are.
        headers = [
            (b"x-closeloop-principal", str(self.id).encode()),
            (b"x-closeloop-actor", self.name.encode()),
            (b"x-closeloop-role", self.role.value.encode()),
        ]
        if self.team is not None:
            headers.append((b"x-closeloop-team", self.team.encode()))
        object.__setattr__(self, "upstream_headers", tuple(headers))

    def allows(self, scope: Scope) -> bool:
        held = self.scopes
        return (
            scope in held
            or Scope.ADMIN in held
            or not held.isdisjoint(IMPLIED_BY.get(scope, frozenset()))
        )


def parse_scopes(values: list[str]) -> frozenset[Scope]:
    """Scopes from the database; one this version does not know grants nothing."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(value) for value in values if value in known)


def effective_scopes(role: Role, scopes: frozenset[Scope]) -> frozenset[Scope]:
    """What a stored key may do: its scopes within its role's ceiling.

    The API refuses to create a key beyond its role, so this only bites on rows written
    some other way (by hand in SQL): a channel key stamped ``admin`` still cannot manage keys.
    """
    return scopes & ROLE_SCOPES[role]


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


# Keys on the ASGI scope through which a request tells the access audit (audit.py) who
# called and why it was refused; set only where that is known, read once per response.
PRINCIPAL_KEY = "closeloop.principal"
DENIAL_KEY = "closeloop.denied"


class Guard:
    """Authenticate the key, check its scope, charge its rate limit: every keyed request."""

    def __init__(self, keys: KeyCache, limiter: RateLimiter | None, retry_after_s: int) -> None:
        self.keys = keys
        self.limiter = limiter
        self._retry_after_s = retry_after_s

    async def authorize(
        self,
        authorization: bytes | None,
        scope: Scope,
        request_scope: MutableMapping[str, Any] | None = None,
    ) -> Authorized:
        """The caller, or a ProblemError; ``request_scope`` (the ASGI scope) gets the
        principal and the reason of a refusal for the access audit."""
        notes: MutableMapping[str, Any] = {} if request_scope is None else request_scope
        try:
            token = parse_bearer(authorization)
        except ProblemError:
            notes[DENIAL_KEY] = "missing" if not authorization else "malformed"
            raise
        key_hash = hash_key(token)
        try:
            principal = await self.keys.get(key_hash)
        except DATABASE_ERRORS as error:
            log.warning("api_key_lookup_failed", error=type(error).__name__)
            raise unavailable(
                "API keys cannot be checked right now; retry later.", self._retry_after_s
            ) from None
        if principal is None:
            notes[DENIAL_KEY] = "invalid"
            raise _unauthorized("invalid", "The API key is unknown or revoked.")
        notes[PRINCIPAL_KEY] = principal
        if not principal.allows(scope):
            notes[DENIAL_KEY] = "insufficient_scope"
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
        return await guard_of(request).authorize(
            authorization_header(request), scope, request.scope
        )

    dependency.__name__ = f"require_{scope.name.lower()}"
    return dependency


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison for secrets (or their hashes) held in memory."""
    return hmac.compare_digest(a.encode(), b.encode())
