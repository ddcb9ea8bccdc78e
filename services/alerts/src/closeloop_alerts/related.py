"""The customer's other feedback: ``GET /v1/feedback/{id}/related``.

For the support console's alert page ("the customer's other feedback across channels"):
every other stored item of the same customer, whatever its channel, newest first. The
customer is recognised by the blind indexes of its identities (customer id, e-mail,
phone, handle; see :mod:`closeloop_alerts.pii`), so no clear value is compared or logged;
customer fields come back decrypted, as on the other reads.

Team scope as on ``GET /v1/feedback/{id}``: an agent or lead needs the item itself to be
visible (its alert, raised or joined, is the team's) and sees only the related items whose
alert is the team's.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from closeloop_alerts import repository
from closeloop_alerts.access import CallerAccess, hidden
from closeloop_alerts.models import Alert, AlertItem, Feedback
from closeloop_alerts.schemas import (
    FeedbackOut,
    RelatedFeedbackOut,
    RelatedItemOut,
    SentimentOut,
)
from closeloop_shared.contracts.alerts import AlertStatus
from closeloop_shared.http.observability import problem

MAX_RELATED = 100

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.get(
    "/feedback/{feedback_id}/related",
    response_model=RelatedFeedbackOut,
    responses={
        404: {"description": "Unknown id (JSON error)"},
        422: {"description": "Invalid id or limit (JSON error)"},
    },
)
async def get_related_feedback(
    feedback_id: uuid.UUID,
    request: Request,
    access: CallerAccess,
    limit: Annotated[int, Query(ge=1, le=MAX_RELATED)] = 20,
) -> RelatedFeedbackOut | JSONResponse:
    """The same customer's other feedback items (any channel), newest first, each with its
    live sentiment and the id of the alert it raised or joined."""
    sessionmaker = request.app.state.api.sessionmaker
    async with sessionmaker() as session:
        found = await session.get(Feedback, feedback_id)
        if found is None:
            return problem(
                404,
                "feedback_not_found",
                f"No feedback with id {feedback_id}.",
                id=str(feedback_id),
            )
        visible = access.alert_filter()
        if visible is not None and not await _item_visible(session, feedback_id, visible):
            return hidden("feedback", feedback_id)
        items, more = await repository.related_feedback(
            session, feedback_id, limit=limit, visible=visible
        )
    return RelatedFeedbackOut(
        feedback_id=feedback_id,
        items=[
            RelatedItemOut(
                feedback=FeedbackOut.of(item.feedback),
                sentiment=SentimentOut.of(item.score) if item.score else None,
                alert_id=item.alert.id if item.alert else None,
                alert_status=AlertStatus(item.alert.status) if item.alert else None,
            )
            for item in items
        ],
        more=more,
    )


async def _item_visible(
    session: AsyncSession, feedback_id: uuid.UUID, visible: ColumnElement[bool]
) -> bool:
    """Whether the caller's team sees the alert the item raised or joined."""
    raised = select(Alert.id).where(Alert.feedback_id == feedback_id, Alert.kind == "item")
    joined = select(AlertItem.alert_id).where(AlertItem.feedback_id == feedback_id)
    alert_id = await session.scalar(
        select(Alert.id).where(Alert.id.in_(raised.union(joined)), visible)
    )
    return alert_id is not None
