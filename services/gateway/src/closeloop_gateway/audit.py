"""The access audit: every refused and every privileged request, in ``gateway.access_audit``.

What is recorded: who (key id, name, role, team, when the key was known), what (method,
route *template*, status, reason, the ids acted on), when, and the client address. Never
the key, never a body.

What counts:
- denied: every 401 and 403 (whoever refused it: the gateway or the alerts service), and
  a 404 the alerts service answered because the alert is not the caller's team's (it says
  so in ``X-Closeloop-Denied``, which the client never sees);
- privileged: every write under ``/v1/admin/`` (API keys: create, rotate, revoke),
  ``/v1/privacy/`` (customer data erasure), ``/v1/owners`` (owners, routing), and every
  DELETE, whatever its outcome.
429s are counted by ``closeloop_gateway_rate_limited_total`` only: a flood of them is
load, not access, and writing a row each would make the flood a database problem.

How, without costing the hot path: a request that is neither refused nor privileged
costs one status comparison. A recorded entry goes into a bounded in-memory buffer that a
background task writes in batches; a database outage therefore never turns a refusal
into a 500 or a wait. While the database is away the buffer holds the newest
``max_buffered`` entries (older ones are dropped and counted); the loss window is that
buffer, logged and exported as metrics, which is the trade-off for never blocking.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from prometheus_client import Counter, Gauge
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from closeloop_gateway.auth import (
    DATABASE_ERRORS,
    DENIAL_KEY,
    PRINCIPAL_KEY,
    Authorized,
    Principal,
    Role,
    Scope,
    require,
)
from closeloop_gateway.errors import ProblemError, unavailable
from closeloop_gateway.models import AccessAudit
from closeloop_gateway.schemas import Problem
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

# Set on the ASGI scope by a privileged handler: what it acted on (ids, never content).
TARGET_KEY = "closeloop.audit_target"

Kind = Literal["denied", "privileged"]

AUDIT_RECORDS = Counter(
    "closeloop_gateway_access_audit_records_total",
    "Requests recorded in the access audit, by kind (denied, privileged) and status code.",
    ["kind", "status"],
)
AUDIT_WRITE_FAILURES = Counter(
    "closeloop_gateway_access_audit_write_failures_total",
    "Batches of audit entries the database did not take (kept in the buffer and retried).",
)
AUDIT_DROPPED = Counter(
    "closeloop_gateway_access_audit_dropped_total",
    "Audit entries lost because the buffer was full while the database was away.",
)
AUDIT_BUFFERED = Gauge(
    "closeloop_gateway_access_audit_buffered",
    "Audit entries waiting to be written.",
)

_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, TimeoutError)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Writes here are privileged: API keys under /v1/admin/, erasures of customer data under
# /v1/privacy/, owners and routing changes under /v1/owners and /v1/routing/reload.
_PRIVILEGED_PREFIXES = ("/v1/admin/", "/v1/privacy/", "/v1/owners", "/v1/routing/reload")


def is_privileged(method: str, route: str) -> bool:
    if method not in _WRITES:
        return False
    return method == "DELETE" or route.startswith(_PRIVILEGED_PREFIXES)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    kind: Kind
    key_id: uuid.UUID | None
    key_name: str | None
    role: str | None
    team: str | None
    method: str
    route: str
    status: int
    reason: str | None
    target: str | None
    client_ip: str | None


def _route_template(scope: ASGIScope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def _client_ip(scope: ASGIScope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ip_address(client[0]))
    except ValueError:
        # Not an address (a test transport's "testclient"): the column is INET.
        return None


def _target(scope: ASGIScope) -> str | None:
    explicit = scope.get(TARGET_KEY)
    if explicit:
        return str(explicit)[:300]
    params = scope.get("path_params") or {}
    return " ".join(f"{name}={value}" for name, value in sorted(params.items()))[:300] or None


def entry_for(scope: ASGIScope, status: int) -> AuditEntry | None:
    """The audit entry a finished request calls for, or None (the common case)."""
    denial = scope.get(DENIAL_KEY)
    method: str = scope["method"]
    kind: Kind
    if status in (401, 403) or (status == 404 and denial is not None):
        kind = "denied"
    else:
        route = _route_template(scope)
        if not is_privileged(method, route):
            return None
        kind = "privileged"
    principal: Principal | None = scope.get(PRINCIPAL_KEY)
    reason = denial
    if kind == "denied" and reason is None:
        reason = "forbidden" if status == 403 else "unauthorized"
    return AuditEntry(
        at=datetime.now(UTC),
        kind=kind,
        key_id=principal.id if principal else None,
        key_name=principal.name if principal else None,
        role=principal.role.value if principal else None,
        team=principal.team if principal else None,
        method=method,
        route=_route_template(scope),
        status=status,
        reason=None if reason is None else str(reason)[:64],
        target=_target(scope),
        client_ip=_client_ip(scope),
    )


class AuditLog:
    """A bounded buffer of entries and the task that writes them in batches."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_buffered: int = 10_000,
        batch_size: int = 500,
        interval_s: float = 1.0,
        retry_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._buffer: deque[AuditEntry] = deque()
        self._max_buffered = max(1, max_buffered)
        self._batch_size = max(1, batch_size)
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: AuditEntry) -> None:
        """Never blocks, never raises: the request it describes is already answered."""
        if len(self._buffer) >= self._max_buffered:
            self._buffer.popleft()
            AUDIT_DROPPED.inc()
        self._buffer.append(entry)
        AUDIT_RECORDS.labels(entry.kind, str(entry.status)).inc()
        AUDIT_BUFFERED.set(len(self._buffer))
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._buffer)

    async def flush(self) -> None:
        """Write everything buffered now; raises the database's error (entries stay)."""
        async with self._lock:
            while self._buffer:
                batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
                async with self._engine.begin() as connection:
                    await connection.execute(
                        insert(AccessAudit), [asdict(entry) for entry in batch]
                    )
                # Only now leave the buffer: a failed write keeps them for the next try.
                for _ in batch:
                    self._buffer.popleft()
                AUDIT_BUFFERED.set(len(self._buffer))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except DATABASE_ERRORS as error:
                AUDIT_WRITE_FAILURES.inc()
                log.warning(
                    "access_audit_write_failed",
                    error=type(error).__name__,
                    buffered=len(self._buffer),
                )
                await asyncio.sleep(self._retry_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="access-audit-writer")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop the writer and make a last attempt at what is buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except _CLOSE_ERRORS as error:
            log.warning("access_audit_lost_at_shutdown", error=type(error).__name__, lost=len(self))


class AuditMiddleware:
    """Pure ASGI: after each response, hand the audit log an entry if one is due."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            entry = entry_for(scope, status)
            audit: AuditLog | None = getattr(scope["app"].state, "audit", None)
            if entry is not None and audit is not None:
                audit.record(entry)


# --- GET /v1/audit ------------------------------------------------------------------------


class AuditRecord(BaseModel):
    id: int
    at: AwareDatetime
    kind: Kind
    key_id: uuid.UUID | None
    key_name: str | None
    role: Role | None
    team: str | None
    method: str
    route: str = Field(description="The route template, e.g. /v1/alerts/{alert_id}.")
    status: int
    reason: str | None = Field(
        description="Why it was refused: missing, malformed, invalid, insufficient_scope, "
        "role, team_scope, forbidden, unauthorized."
    )
    target: str | None = Field(description="What a request acted on (ids).")
    client_ip: str | None


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None = Field(description="Pass as `cursor` for older entries.")


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(str(entry_id).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise ProblemError(
            422, "invalid_cursor", "The cursor is not one this API returned."
        ) from None


AdminCaller = Annotated[Authorized, Depends(require(Scope.ADMIN))]


async def list_audit(
    request: Request,
    response: Response,
    caller: AdminCaller,
    kind: Kind | None = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    key_id: uuid.UUID | None = None,
    reason: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
    route: Annotated[str | None, Query(max_length=200, pattern=r"^/[A-Za-z0-9_{}/\-.]*$")] = None,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPage:
    """Refused and privileged requests, newest first; follow `next_cursor` for more."""
    audit: AuditLog = request.app.state.audit
    engine: AsyncEngine = request.app.state.engine
    equal: list[tuple[Any, object]] = [
        (AccessAudit.kind, kind),
        (AccessAudit.status, status),
        (AccessAudit.key_id, key_id),
        (AccessAudit.reason, reason),
        (AccessAudit.route, route),
    ]
    conditions: list[ColumnElement[bool]] = [
        column == value for column, value in equal if value is not None
    ]
    if since is not None:
        conditions.append(AccessAudit.at >= since)
    if until is not None:
        conditions.append(AccessAudit.at < until)
    if cursor is not None:
        conditions.append(AccessAudit.id < _decode_cursor(cursor))
    try:
        # What this replica still buffers is written first, so a reader sees it.
        await audit.flush()
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(AccessAudit.__table__)
                    .where(*conditions)
                    .order_by(AccessAudit.id.desc())
                    .limit(limit + 1)
                )
            ).all()
    except DATABASE_ERRORS as error:
        log.warning("access_audit_unavailable", error=type(error).__name__)
        retry_after_s: int = request.app.state.settings.upstream_retry_after_s
        raise unavailable("The access audit is unavailable; retry later.", retry_after_s) from None
    items = [_audit_record(row._mapping) for row in rows[:limit]]
    response.raw_headers.extend(caller.response_headers)
    next_cursor = _encode_cursor(items[-1].id) if len(rows) > limit else None
    return AuditPage(items=items, next_cursor=next_cursor)


def _audit_record(row: Any) -> AuditRecord:
    values = dict(row)
    client_ip = values.get("client_ip")
    values["client_ip"] = None if client_ip is None else str(client_ip)
    return AuditRecord.model_validate(values)


def _errors(statuses: Sequence[int]) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "No API key, or an unknown or revoked one.",
        403: "The API key lacks the `admin` scope.",
        422: "A filter or the cursor is not valid.",
        429: "This API key's rate limit is exhausted; see Retry-After.",
        503: "The audit store is unavailable; see Retry-After.",
    }
    return {status: {"model": Problem, "description": descriptions[status]} for status in statuses}


def add_routes(app: FastAPI) -> None:
    app.add_middleware(AuditMiddleware)
    app.add_api_route(
        "/v1/audit",
        list_audit,
        methods=["GET"],
        response_model=AuditPage,
        operation_id="listAccessAudit",
        summary="List refused and privileged requests",
        tags=["audit"],
        responses=_errors((401, 403, 422, 429, 503)),
        openapi_extra={"security": [{"bearer": []}], "x-required-scope": Scope.ADMIN.value},
    )
