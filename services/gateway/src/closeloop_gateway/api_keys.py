"""API keys: the repository over ``gateway.api_key`` and the admin API that manages them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from closeloop_gateway.audit import TARGET_KEY
from closeloop_gateway.auth import (
    ALL_SCOPES,
    DATABASE_ERRORS,
    Authorized,
    Principal,
    Role,
    Scope,
    display_prefix,
    effective_scopes,
    generate_key,
    guard_of,
    hash_key,
    parse_scopes,
    require,
    same_secret,
)
from closeloop_gateway.config import GatewaySettings
from closeloop_gateway.errors import ProblemError, unavailable
from closeloop_gateway.limits import (
    BodyLimits,
    check_declared_length,
    is_json,
    read_body,
    require_media_type,
)
from closeloop_gateway.models import ApiKey
from closeloop_gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyRotated,
    Problem,
)
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

BOOTSTRAP_KEY_NAME = "bootstrap-admin"
# Serialises bootstrap across replicas starting at once (any constant; hashtext is stable).
_BOOTSTRAP_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtext('closeloop_gateway.bootstrap'))")

_COLUMNS = (
    ApiKey.id,
    ApiKey.name,
    ApiKey.prefix,
    ApiKey.scopes,
    ApiKey.role,
    ApiKey.team,
    ApiKey.created_at,
    ApiKey.revoked_at,
    ApiKey.last_used_at,
)


# id, name, prefix, scopes, role, team, created_at, revoked_at, last_used_at
_KeyRow = Row[
    uuid.UUID, str, str, list[str], str, str | None, datetime, datetime | None, datetime | None
]


def _record(row: _KeyRow) -> ApiKeyOut:
    role = Role(row.role)
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=role,
        team=row.team,
        scopes=sorted(effective_scopes(role, parse_scopes(row.scopes))),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


ROLES = frozenset(role.value for role in Role)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a new key is: its name, role, team (agents and leads) and scopes."""

    name: str
    role: Role
    team: str | None
    scopes: frozenset[Scope]

    @classmethod
    def of(cls, payload: ApiKeyCreate) -> Grant:
        # ApiKeyCreate's validator has filled in the role and scopes by now.
        assert payload.role is not None
        assert payload.scopes is not None
        return cls(payload.name, payload.role, payload.team, frozenset(payload.scopes))


async def _insert_key(connection: AsyncConnection, grant: Grant) -> ApiKeyCreated:
    key = generate_key()
    statement = (
        insert(ApiKey)
        .values(
            id=uuid.uuid4(),
            name=grant.name,
            prefix=display_prefix(key),
            hash=hash_key(key),
            scopes=sorted(scope.value for scope in grant.scopes),
            role=grant.role.value,
            team=grant.team,
        )
        .returning(*_COLUMNS)
    )
    row = (await connection.execute(statement)).one()
    return ApiKeyCreated(**_record(row).model_dump(), key=key)


class ApiKeyRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def find_active(self, key_hash: str) -> Principal | None:
        """The principal of an unrevoked key with this hash, stamping its last use.

        One statement, so a cache miss costs one round trip (plus the transaction). The
        equality is on a hash of a 256-bit secret: timing it reveals nothing usable.
        """
        statement = (
            update(ApiKey)
            .where(ApiKey.hash == key_hash, ApiKey.revoked_at.is_(None))
            .values(last_used_at=func.now())
            .returning(ApiKey.id, ApiKey.name, ApiKey.scopes, ApiKey.role, ApiKey.team, ApiKey.hash)
        )
        async with self._engine.begin() as connection:
            row = (await connection.execute(statement)).first()
        if row is None or not same_secret(row.hash, key_hash):
            return None
        if row.role not in ROLES:
            # Written by a newer version: a role this one cannot enforce grants nothing.
            log.warning("api_key_role_unknown", key_id=str(row.id), role=row.role)
            return None
        role = Role(row.role)
        return Principal(
            id=row.id,
            name=row.name,
            scopes=effective_scopes(role, parse_scopes(row.scopes)),
            role=role,
            team=row.team,
        )

    async def create(self, grant: Grant) -> ApiKeyCreated:
        async with self._engine.begin() as connection:
            return await _insert_key(connection, grant)

    async def rotate(self, key_id: uuid.UUID, *, keep_old: bool) -> ApiKeyRotated | None:
        """A new key with the old one's name, role, team and scopes; the old one revoked
        in the same transaction unless ``keep_old`` (clients then move at their pace).
        None when there is no such active key."""
        async with self._engine.begin() as connection:
            old = (
                await connection.execute(
                    select(ApiKey.name, ApiKey.role, ApiKey.team, ApiKey.scopes)
                    .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                    .with_for_update()
                )
            ).first()
            if old is None:
                return None
            if old.name == BOOTSTRAP_KEY_NAME:
                raise ProblemError(
                    409,
                    "conflict",
                    "The bootstrap admin key is rotated by setting a new "
                    "CLOSELOOP_BOOTSTRAP_ADMIN_KEY and restarting the gateway.",
                )
            role = Role(old.role)
            grant = Grant(
                old.name, role, old.team, effective_scopes(role, parse_scopes(old.scopes))
            )
            created = await _insert_key(connection, grant)
            if not keep_old:
                await connection.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=func.now())
                )
        return ApiKeyRotated(**created.model_dump(), replaces=key_id, replaced_revoked=not keep_old)

    async def list(self) -> list[ApiKeyOut]:
        statement = select(*_COLUMNS).order_by(ApiKey.created_at, ApiKey.id)
        async with self._engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return [_record(row) for row in rows]

    async def revoke(self, key_id: uuid.UUID) -> ApiKeyOut | None:
        """Revoke a key; revoking a revoked key keeps its first revocation time."""
        statement = (
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
            .returning(*_COLUMNS)
        )
        async with self._engine.begin() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else _record(row)

    async def ensure_bootstrap(self, key: str) -> None:
        """Make the operator's key an admin key named ``bootstrap-admin``; idempotent.

        A different bootstrap key from an earlier start is revoked (the operator rotated
        the variable). A bootstrap key revoked through the API stays revoked: changing the
        variable is the way to get a new one, so a restart never resurrects a key.
        """
        key_hash = hash_key(key)
        async with self._engine.begin() as connection:
            await connection.execute(_BOOTSTRAP_LOCK_SQL)
            rotated = (
                await connection.execute(
                    update(ApiKey)
                    .where(
                        ApiKey.name == BOOTSTRAP_KEY_NAME,
                        ApiKey.hash != key_hash,
                        ApiKey.revoked_at.is_(None),
                    )
                    .values(revoked_at=func.now())
                    .returning(ApiKey.id)
                )
            ).all()
            created = (
                await connection.execute(
                    insert(ApiKey)
                    .values(
                        id=uuid.uuid4(),
                        name=BOOTSTRAP_KEY_NAME,
                        prefix=display_prefix(key),
                        hash=key_hash,
                        scopes=sorted(scope.value for scope in ALL_SCOPES),
                        role=Role.ADMIN.value,
                    )
                    .on_conflict_do_nothing(index_elements=[ApiKey.hash])
                    .returning(ApiKey.id)
                )
            ).first()
            existing = (
                await connection.execute(
                    select(ApiKey.id, ApiKey.revoked_at).where(ApiKey.hash == key_hash)
                )
            ).one()
        for row in rotated:
            log.warning("bootstrap_admin_key_rotated", revoked_key_id=str(row.id))
        if created is not None:
            log.info("bootstrap_admin_key_created", key_id=str(created.id))
        elif existing.revoked_at is not None:
            log.warning(
                "bootstrap_admin_key_is_revoked",
                key_id=str(existing.id),
                hint="set CLOSELOOP_BOOTSTRAP_ADMIN_KEY to a new value to get a working one",
            )


# --- admin API --------------------------------------------------------------------------------

AdminCaller = Annotated[Authorized, Depends(require(Scope.ADMIN))]


def _repository(request: Request) -> ApiKeyRepository:
    repository: ApiKeyRepository = request.app.state.api_keys
    return repository


@contextmanager
def _database(request: Request) -> Iterator[None]:
    """A database that is away is a 503 the client may retry, never a 500."""
    try:
        yield
    except DATABASE_ERRORS as error:
        log.warning("api_key_store_unavailable", error=type(error).__name__)
        settings: GatewaySettings = request.app.state.settings
        raise unavailable(
            "The API key store is unavailable; retry later.", settings.upstream_retry_after_s
        ) from None


async def create_api_key(
    request: Request, response: Response, caller: AdminCaller
) -> ApiKeyCreated:
    """Create an API key. The secret is in this response only: it is stored as a hash."""
    headers = request.headers
    require_media_type(
        headers.get("content-type", "").encode("latin-1"), is_json, "application/json"
    )
    limits: BodyLimits = request.app.state.body_limits
    declared = headers.get("content-length")
    check_declared_length(None if declared is None else declared.encode(), limits.default)
    body = await read_body(request.receive, limits.default)
    try:
        payload = ApiKeyCreate.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**detail, "loc": ("body", *detail["loc"])}
                for detail in error.errors(include_url=False, include_input=False)
            ]
        ) from None
    if payload.name == BOOTSTRAP_KEY_NAME:
        raise ProblemError(
            409, "conflict", f"The name '{BOOTSTRAP_KEY_NAME}' is reserved for the operator's key."
        )
    with _database(request):
        created = await _repository(request).create(Grant.of(payload))
    log.info(
        "api_key_created",
        key_id=str(created.id),
        role=created.role.value,
        team=created.team,
        scopes=[scope.value for scope in created.scopes],
        by=str(caller.principal.id),
    )
    _audit_target(request, created)
    # The body holds a secret: no cache along the way may keep it.
    response.headers["cache-control"] = "no-store"
    response.raw_headers.extend(caller.response_headers)
    return created


def _audit_target(request: Request, key: ApiKeyOut) -> None:
    """Name the key acted on (and what it may do) in the access audit; never its secret."""
    team = f" team={key.team}" if key.team else ""
    request.scope[TARGET_KEY] = f"key_id={key.id} role={key.role.value}{team}"


async def rotate_api_key(
    key_id: uuid.UUID,
    request: Request,
    response: Response,
    caller: AdminCaller,
    keep_old: Annotated[
        bool, Query(description="Leave the old key valid too (revoke it once clients moved).")
    ] = False,
) -> ApiKeyRotated:
    """Replace a key by a new one with the same name, role, team and scopes; the secret
    is in this response only. The old key is revoked at once unless `keep_old`."""
    with _database(request):
        rotated = await _repository(request).rotate(key_id, keep_old=keep_old)
    if rotated is None:
        raise ProblemError(404, "not_found", "No active API key has this id.")
    if not keep_old:
        _forget(request, key_id)
    log.info(
        "api_key_rotated",
        key_id=str(rotated.id),
        replaces=str(key_id),
        replaced_revoked=not keep_old,
        by=str(caller.principal.id),
    )
    _audit_target(request, rotated)
    request.scope[TARGET_KEY] += f" replaces={key_id}"
    response.headers["cache-control"] = "no-store"
    response.raw_headers.extend(caller.response_headers)
    return rotated


def _forget(request: Request, key_id: uuid.UUID) -> None:
    """This replica refuses a revoked key at once (others within the key cache TTL)."""
    guard = guard_of(request)
    guard.keys.forget(key_id)
    if guard.limiter is not None:
        guard.limiter.forget(key_id)


async def list_api_keys(request: Request, response: Response, caller: AdminCaller) -> ApiKeyList:
    """Every key, revoked ones included, oldest first; never a secret."""
    with _database(request):
        items = await _repository(request).list()
    response.raw_headers.extend(caller.response_headers)
    return ApiKeyList(items=items)


async def revoke_api_key(key_id: uuid.UUID, request: Request, caller: AdminCaller) -> Response:
    """Revoke a key. This replica refuses it at once, others within the key cache TTL."""
    with _database(request):
        revoked = await _repository(request).revoke(key_id)
    if revoked is None:
        raise ProblemError(404, "not_found", "No API key has this id.")
    _forget(request, key_id)
    _audit_target(request, revoked)
    log.info("api_key_revoked", key_id=str(key_id), by=str(caller.principal.id))
    response = Response(status_code=204)
    response.raw_headers.extend(caller.response_headers)
    return response


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "No API key, or an unknown or revoked one.",
        403: "The API key lacks the `admin` scope.",
        404: "No (active) API key has this id.",
        409: "The name is reserved (create), or the key is the bootstrap key (rotate).",
        413: "The body is too large.",
        415: "The body is not JSON.",
        422: "The request does not match the schema.",
        429: "This API key's rate limit is exhausted; see Retry-After.",
        503: "The key store is unavailable; see Retry-After.",
    }
    return {status: {"model": Problem, "description": descriptions[status]} for status in statuses}


def _admin_operation(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"security": [{"bearer": []}], "x-required-scope": Scope.ADMIN.value, **(extra or {})}


def add_routes(app: FastAPI) -> None:
    # Routes are added to the app itself, not through include_router: FastAPI wraps
    # included routers in one opaque route, which would hide the route templates the
    # shared request metrics label by.
    app.add_api_route(
        "/v1/admin/api-keys",
        create_api_key,
        methods=["POST"],
        status_code=201,
        response_model=ApiKeyCreated,
        operation_id="createApiKey",
        summary="Create an API key",
        tags=["api keys"],
        responses=_errors(401, 403, 409, 413, 415, 422, 429, 503),
        openapi_extra=_admin_operation(
            {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ApiKeyCreate"}
                        }
                    },
                }
            }
        ),
    )
    app.add_api_route(
        "/v1/admin/api-keys",
        list_api_keys,
        methods=["GET"],
        response_model=ApiKeyList,
        operation_id="listApiKeys",
        summary="List API keys",
        tags=["api keys"],
        responses=_errors(401, 403, 429, 503),
        openapi_extra=_admin_operation(),
    )
    app.add_api_route(
        "/v1/admin/api-keys/{key_id}/rotate",
        rotate_api_key,
        methods=["POST"],
        status_code=201,
        response_model=ApiKeyRotated,
        operation_id="rotateApiKey",
        summary="Rotate an API key",
        tags=["api keys"],
        responses=_errors(401, 403, 404, 409, 422, 429, 503),
        openapi_extra=_admin_operation(),
    )
    app.add_api_route(
        "/v1/admin/api-keys/{key_id}",
        revoke_api_key,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        operation_id="revokeApiKey",
        summary="Revoke an API key",
        tags=["api keys"],
        responses=_errors(401, 403, 404, 422, 429, 503),
        openapi_extra=_admin_operation(),
    )
