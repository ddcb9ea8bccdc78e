"""The support API: list, inspect, acknowledge and resolve alerts; look up feedback.

The gateway forwards these paths unchanged and names the caller in
``X-Closeloop-Actor``; that name is what the audit trail records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository, service
from closeloop_alerts.owners import OwnerStore
from closeloop_alerts.schemas import (
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    AlertPage,
    AssignIn,
    CommentIn,
    CustomerReplyStatusIn,
    DeliveryOut,
    EscalateIn,
    FeedbackDetailOut,
    FeedbackOut,
    JoinedItemOut,
    ReopenIn,
    ResolveIn,
    SentimentOut,
)
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.http.observability import problem

MAX_PAGE = 200


@dataclass(frozen=True)
class ApiContext:
    """What the routes need from the app's lifespan (set on ``app.state.api``)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    wake_outbox: Callable[[], None]
    lifecycle: service.Lifecycle
    owners: OwnerStore


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


Context = Annotated[ApiContext, Depends(_context)]
Actor = Annotated[
    str | None,
    Header(
        alias="X-Closeloop-Actor",
        max_length=256,
        description="Who acts (the gateway sets the API key name); recorded in the audit trail.",
    ),
]

router = APIRouter(prefix="/v1", tags=["alerts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown id (JSON error)"},
    422: {"description": "Invalid id or body (JSON error)"},
}


def _not_found(kind: str, item_id: uuid.UUID) -> JSONResponse:
    return problem(404, f"{kind}_not_found", f"No {kind} with id {item_id}.", id=str(item_id))


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    context: Context,
    status: AlertStatus | None = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    priority: AlertPriority | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage | JSONResponse:
    """Alerts, newest first; follow ``next_cursor`` for older pages."""
    try:
        position = repository.Cursor.decode(cursor) if cursor else None
    except repository.InvalidCursor as error:
        return problem(422, "invalid_cursor", str(error))
    async with context.sessionmaker() as session:
        rows, next_cursor = await repository.list_alerts(
            session,
            status=status.value if status else None,
            owner=owner,
            priority=priority.value if priority else None,
            limit=limit,
            cursor=position,
        )
    return AlertPage(
        items=[AlertOut.of(alert, channel) for alert, channel in rows],
        next_cursor=next_cursor.encode() if next_cursor else None,
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetailOut, responses=_ERRORS)
async def get_alert(alert_id: uuid.UUID, context: Context) -> AlertDetailOut | JSONResponse:
    """One alert with its feedback, sentiment, deliveries (and their attempts) and history."""
    async with context.sessionmaker() as session:
        detail = await repository.get_alert_detail(session, alert_id)
    if detail is None:
        return _not_found("alert", alert_id)
    summary = AlertOut.of(detail.alert, detail.feedback.channel)
    return AlertDetailOut(
        **summary.model_dump(),
        feedback=FeedbackOut.of(detail.feedback),
        sentiment=SentimentOut.of(detail.score),
        deliveries=[DeliveryOut.of(d, detail.attempts[d.id]) for d in detail.deliveries],
        history=[AlertEventOut.of(event) for event in detail.history],
        items=[JoinedItemOut.of(item, feedback) for item, feedback in detail.items],
    )


def answer(result: service.Result, alert_id: uuid.UUID) -> AlertOut | JSONResponse:
    if isinstance(result, service.NotFound):
        return _not_found("alert", alert_id)
    if isinstance(result, service.Conflict):
        allowed = " or ".join(sorted(status.value for status in result.allowed))
        return problem(
            409,
            "invalid_transition",
            f"Cannot {result.verb} an alert that is {result.status.value}; "
            f"only {allowed} alerts can be.",
            current_status=result.status.value,
        )
    if isinstance(result, service.Invalid):
        return problem(422, result.code, result.detail)
    return AlertOut.of(result.alert, result.channel)


_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "The alert's state does not allow this (JSON error)"},
}


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def acknowledge_alert(
    alert_id: uuid.UUID, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """open → acknowledged."""
    result = await context.lifecycle.transition(alert_id, service.ACKNOWLEDGE, actor=actor)
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def resolve_alert(
    alert_id: uuid.UUID, body: ResolveIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """open or acknowledged → resolved, with a required note, an optional root cause and an
    optional reply to the customer (published for the channel system to deliver)."""
    result = await context.lifecycle.resolve(
        alert_id,
        actor=actor,
        note=body.note,
        root_cause=body.root_cause,
        customer_reply=body.customer_reply,
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/reopen", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def reopen_alert(
    alert_id: uuid.UUID, body: ReopenIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """resolved → open again (fresh SLA clocks), with a required note."""
    return answer(await context.lifecycle.reopen(alert_id, actor=actor, note=body.note), alert_id)


@router.post("/alerts/{alert_id}/assign", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def assign_alert(
    alert_id: uuid.UUID, body: AssignIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """Assign to a person and/or hand over to another owner (who is notified)."""
    result = await context.lifecycle.assign(
        alert_id, actor=actor, assignee=body.assignee, owner_id=body.owner, note=body.note
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/comments", response_model=AlertOut, responses=_ERRORS)
async def comment_alert(
    alert_id: uuid.UUID, body: CommentIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """Add a comment to the alert's history (any state)."""
    return answer(await context.lifecycle.comment(alert_id, actor=actor, text=body.text), alert_id)


@router.post("/alerts/{alert_id}/escalate", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def escalate_alert(
    alert_id: uuid.UUID, body: EscalateIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """Escalate now: to ``to_owner`` or up the escalation chain (who is notified)."""
    result = await context.lifecycle.escalate(
        alert_id, actor=actor, note=body.note, to_owner=body.to_owner
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/customer-reply", response_model=AlertOut, responses=_ERRORS)
async def report_customer_reply(
    alert_id: uuid.UUID, body: CustomerReplyStatusIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """For channel systems: report whether the reply reached the customer (sent / failed)."""
    result = await context.lifecycle.record_customer_reply(
        alert_id, actor=actor, status=body.status, detail=body.detail
    )
    return answer(result, alert_id)


@router.get(
    "/feedback/{feedback_id}",
    response_model=FeedbackDetailOut,
    responses=_ERRORS,
    tags=["feedback"],
)
async def get_feedback(
    feedback_id: uuid.UUID, context: Context
) -> FeedbackDetailOut | JSONResponse:
    """A stored feedback item with its latest sentiment score and its alert, if any."""
    async with context.sessionmaker() as session:
        detail = await repository.get_feedback_detail(session, feedback_id)
    if detail is None:
        return _not_found("feedback", feedback_id)
    feedback = FeedbackOut.of(detail.feedback)
    return FeedbackDetailOut(
        **feedback.model_dump(),
        sentiment=SentimentOut.of(detail.score) if detail.score else None,
        alert=AlertOut.of(detail.alert, detail.feedback.channel) if detail.alert else None,
    )
