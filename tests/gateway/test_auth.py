"""Unit tests: key format and hashing, bearer parsing, scopes, the key cache, the guard."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from closeloop_gateway.auth import (
    DENIAL_KEY,
    KEY_PREFIX,
    PRINCIPAL_KEY,
    ROLE_SCOPES,
    Guard,
    KeyCache,
    Principal,
    Role,
    Scope,
    display_prefix,
    effective_scopes,
    generate_key,
    hash_key,
    legacy_role,
    parse_bearer,
    parse_scopes,
)
from closeloop_gateway.errors import ProblemError
from closeloop_gateway.limits import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def principal(
    *scopes: Scope, name: str = "ci", role: Role = Role.ADMIN, team: str | None = None
) -> Principal:
    return Principal(id=uuid.uuid4(), name=name, scopes=frozenset(scopes), role=role, team=team)


class Store:
    """A fake key table counting its lookups."""

    def __init__(self) -> None:
        self.keys: dict[str, Principal] = {}
        self.lookups = 0
        self.delay_s = 0.0
        self.failure: Exception | None = None

    async def lookup(self, key_hash: str) -> Principal | None:
        self.lookups += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failure is not None:
            raise self.failure
        return self.keys.get(key_hash)


def test_keys_are_random_prefixed_and_hashed_with_sha256() -> None:
    key = generate_key()
    assert key.startswith(KEY_PREFIX)
    assert len(key) == len(KEY_PREFIX) + 43  # 32 random bytes, URL-safe base64
    assert generate_key() != key
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key.encode()) == hash_key(key)
    assert display_prefix(key) == key[:12]
    assert display_prefix("operator-chosen-secret-of-32-chars") == "oper"


def test_bearer_parsing() -> None:
    assert parse_bearer(b"Bearer clk_abc-_") == b"clk_abc-_"
    assert parse_bearer(b"bearer   clk_abc  ") == b"clk_abc"
    reasons = {
        None: "missing",
        b"": "missing",
        b"Basic abc": "malformed",
        b"Bearer": "malformed",
        b"Bearer a b": "malformed",
        b"Bearer " + b"a" * 257: "malformed",
        b"Bearer caf\xc3\xa9": "malformed",
    }
    for header in reasons:
        with pytest.raises(ProblemError) as raised:
            parse_bearer(header)
        assert raised.value.status == 401
        assert raised.value.code == "unauthorized"
        challenge = dict(raised.value.headers)[b"www-authenticate"]
        assert challenge.startswith(b"Bearer")


def test_admin_implies_every_scope() -> None:
    admin = principal(Scope.ADMIN)
    assert all(admin.allows(scope) for scope in Scope)
    writer = principal(Scope.FEEDBACK_WRITE)
    assert writer.allows(Scope.FEEDBACK_WRITE)
    assert not writer.allows(Scope.ALERTS_READ)
    assert not writer.allows(Scope.ADMIN)
    assert parse_scopes(["alerts:read", "future:scope"]) == frozenset({Scope.ALERTS_READ})


def test_principal_headers_name_the_key_its_role_and_team() -> None:
    caller = principal(Scope.ALERTS_WRITE, name="support desk")
    assert dict(caller.upstream_headers) == {
        b"x-closeloop-principal": str(caller.id).encode(),
        b"x-closeloop-actor": b"support desk",
        b"x-closeloop-role": b"admin",
    }
    agent = principal(Scope.ALERTS_READ, name="ann", role=Role.AGENT, team="hotline-team")
    assert dict(agent.upstream_headers)[b"x-closeloop-role"] == b"agent"
    assert dict(agent.upstream_headers)[b"x-closeloop-team"] == b"hotline-team"


def test_roles_cap_scopes_and_old_keys_get_a_role_by_their_scopes() -> None:
    assert ROLE_SCOPES[Role.CHANNEL] == {Scope.FEEDBACK_WRITE, Scope.REPLIES_WRITE}
    assert Scope.ADMIN not in ROLE_SCOPES[Role.AGENT] | ROLE_SCOPES[Role.LEAD]
    assert ROLE_SCOPES[Role.ADMIN] == set(Scope)
    # A row stamped with more than its role allows is held to the role.
    assert effective_scopes(Role.CHANNEL, frozenset({Scope.ADMIN, Scope.FEEDBACK_WRITE})) == {
        Scope.FEEDBACK_WRITE
    }
    assert legacy_role(frozenset({Scope.FEEDBACK_WRITE})) is Role.CHANNEL
    assert legacy_role(frozenset({Scope.ALERTS_READ})) is Role.ADMIN
    assert legacy_role(frozenset({Scope.FEEDBACK_WRITE, Scope.ALERTS_READ})) is Role.ADMIN
    assert legacy_role(frozenset({Scope.ADMIN})) is Role.ADMIN
    assert legacy_role(frozenset({Scope.REPLIES_WRITE})) is Role.CHANNEL


def test_alerts_write_implies_replies_write_and_nothing_implies_more() -> None:
    assert principal(Scope.REPLIES_WRITE).allows(Scope.REPLIES_WRITE)
    assert principal(Scope.ALERTS_WRITE).allows(Scope.REPLIES_WRITE)
    assert principal(Scope.ADMIN).allows(Scope.REPLIES_WRITE)
    assert not principal(Scope.ALERTS_READ).allows(Scope.REPLIES_WRITE)
    assert not principal(Scope.FEEDBACK_WRITE).allows(Scope.REPLIES_WRITE)
    replier = principal(Scope.REPLIES_WRITE)
    assert not replier.allows(Scope.ALERTS_WRITE)
    assert not replier.allows(Scope.ALERTS_READ)


async def test_cache_reuses_hits_and_misses_until_the_ttl() -> None:
    store, clock = Store(), Clock()
    known = principal(Scope.ADMIN)
    store.keys["h1"] = known
    cache = KeyCache(store.lookup, ttl_s=5, clock=clock)
    assert await cache.get("h1") == known
    assert await cache.get("h1") == known
    assert await cache.get("nope") is None
    assert await cache.get("nope") is None
    assert store.lookups == 2
    del store.keys["h1"]  # revoked elsewhere
    clock.now += 4.9
    assert await cache.get("h1") == known
    clock.now += 0.2
    assert await cache.get("h1") is None
    assert store.lookups == 3


async def test_cache_ttl_zero_always_asks_the_store() -> None:
    store = Store()
    cache = KeyCache(store.lookup, ttl_s=0)
    for _ in range(3):
        await cache.get("h")
    assert store.lookups == 3
    assert len(cache) == 0


async def test_cache_forgets_a_revoked_key_at_once() -> None:
    store, clock = Store(), Clock()
    known = principal(Scope.ADMIN)
    store.keys["h1"] = known
    cache = KeyCache(store.lookup, ttl_s=60, clock=clock)
    await cache.get("h1")
    del store.keys["h1"]
    cache.forget(known.id)
    assert await cache.get("h1") is None


async def test_cache_is_bounded() -> None:
    store = Store()
    cache = KeyCache(store.lookup, ttl_s=60, max_entries=3, clock=Clock())
    for index in range(10):
        await cache.get(f"random-{index}")
    assert len(cache) == 3


async def test_concurrent_misses_share_one_lookup() -> None:
    store = Store()
    store.delay_s = 0.05
    store.keys["h"] = principal(Scope.ADMIN)
    cache = KeyCache(store.lookup, ttl_s=0)
    results = await asyncio.gather(*(cache.get("h") for _ in range(20)))
    assert len({r.id for r in results if r is not None}) == 1
    assert store.lookups == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_lookup() -> None:
    store = Store()
    store.delay_s = 0.05
    store.keys["h"] = principal(Scope.ADMIN)
    cache = KeyCache(store.lookup, ttl_s=0)
    first = asyncio.create_task(cache.get("h"))
    second = asyncio.create_task(cache.get("h"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second is not None
    assert store.lookups == 1


async def test_guard_checks_key_scope_and_rate() -> None:
    store, clock = Store(), Clock()
    key = generate_key()
    writer = principal(Scope.FEEDBACK_WRITE)
    store.keys[hash_key(key)] = writer
    guard = Guard(
        KeyCache(store.lookup, ttl_s=0),
        RateLimiter(rate_per_s=1, burst=1, clock=clock),
        retry_after_s=3,
    )
    authorized = await guard.authorize(b"Bearer " + key.encode(), Scope.FEEDBACK_WRITE)
    assert authorized.principal == writer
    assert dict(authorized.response_headers)[b"ratelimit"] == b'"per-key";r=0;t=1'

    with pytest.raises(ProblemError) as raised:
        await guard.authorize(b"Bearer " + key.encode(), Scope.ALERTS_READ)
    assert raised.value.status == 403
    with pytest.raises(ProblemError) as raised:
        await guard.authorize(b"Bearer " + key.encode(), Scope.FEEDBACK_WRITE)
    assert raised.value.status == 429
    assert dict(raised.value.headers)[b"retry-after"] == b"1"
    with pytest.raises(ProblemError) as raised:
        await guard.authorize(b"Bearer clk_unknown", Scope.FEEDBACK_WRITE)
    assert raised.value.status == 401


async def test_guard_turns_a_database_outage_into_503() -> None:
    store = Store()
    store.failure = ConnectionRefusedError()
    guard = Guard(KeyCache(store.lookup, ttl_s=0), None, retry_after_s=4)
    with pytest.raises(ProblemError) as raised:
        await guard.authorize(b"Bearer clk_x", Scope.FEEDBACK_WRITE)
    assert raised.value.status == 503
    assert dict(raised.value.headers) == {b"retry-after": b"4"}


async def test_guard_tells_the_audit_who_called_and_why_it_refused() -> None:
    store = Store()
    key = generate_key()
    agent = principal(Scope.ALERTS_READ, role=Role.AGENT, team="hotline-team")
    store.keys[hash_key(key)] = agent
    guard = Guard(KeyCache(store.lookup, ttl_s=0), None, retry_after_s=3)
    cases: list[tuple[bytes | None, Scope, str | None]] = [
        (None, Scope.ALERTS_READ, "missing"),
        (b"Basic abc", Scope.ALERTS_READ, "malformed"),
        (b"Bearer clk_unknown", Scope.ALERTS_READ, "invalid"),
        (b"Bearer " + key.encode(), Scope.ADMIN, "insufficient_scope"),
        (b"Bearer " + key.encode(), Scope.ALERTS_READ, None),
    ]
    for authorization, scope, reason in cases:
        notes: dict[str, object] = {}
        if reason is None:
            await guard.authorize(authorization, scope, notes)
        else:
            with pytest.raises(ProblemError):
                await guard.authorize(authorization, scope, notes)
        assert notes.get(DENIAL_KEY) == reason
        known = reason in {None, "insufficient_scope"}
        assert notes.get(PRINCIPAL_KEY) == (agent if known else None)
