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
from closeloop_alerts.schemas import (
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    AlertPage,
    DeliveryOut,
    FeedbackDetailOut,
    FeedbackOut,
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
    )


async def _transition(
    context: ApiContext,
    alert_id: uuid.UUID,
    transition: service.Transition,
    actor: str | None,
    note: str | None = None,
) -> AlertOut | JSONResponse:
    result = await service.change_status(
        context.sessionmaker,
        alert_id,
        transition,
        actor=actor,
        note=note,
        on_outbox=context.wake_outbox,
    )
    if isinstance(result, service.NotFound):
        return _not_found("alert", alert_id)
    if isinstance(result, service.Conflict):
        allowed = " or ".join(sorted(status.value for status in transition.allowed_from))
        return problem(
            409,
            "invalid_transition",
            f"Cannot {transition.verb} an alert that is {result.status.value}; "
            f"only {allowed} alerts can be.",
            current_status=result.status.value,
        )
    return AlertOut.of(result.alert, result.channel)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={**_ERRORS, 409: {"description": "The alert is not open"}},
)
async def acknowledge_alert(
    alert_id: uuid.UUID, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """open → acknowledged."""
    return await _transition(context, alert_id, service.ACKNOWLEDGE, actor)


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    responses={**_ERRORS, 409: {"description": "The alert is already resolved"}},
)
async def resolve_alert(
    alert_id: uuid.UUID, body: ResolveIn, context: Context, actor: Actor = None
) -> AlertOut | JSONResponse:
    """open or acknowledged → resolved, with a required note."""
    return await _transition(context, alert_id, service.RESOLVE, actor, body.note)


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
