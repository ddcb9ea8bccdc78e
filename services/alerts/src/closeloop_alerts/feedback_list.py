"""Stored feedback, filtered and paged: ``GET /v1/feedback``.

The support console's dashboard counts feedback items (volume, sentiment mix, NPS, CSAT,
CES, the heat map), most of which raised no alert; this list is where those numbers link
to. Its filters mean exactly what the KPI groups mean (``kpis.py``), so a dashboard number
and the length of the list it links to agree:

* the range is on when the item **occurred**, ``[from, to)``, as the KPIs' feedback
  measures;
* ``sentiment`` and ``topic`` are those of the item's **live** score (the first stored,
  never a re-score); an item without a score has no label and no topic;
* ``rating_type`` keeps the items that carry a rating of that type (the KPIs' responses);
* ``(none)`` asks for items without a touchpoint, a journey stage or a topic, as the KPI
  groups name "no value".

Erased items are left out. Team scope as on the other feedback reads: an agent or lead
sees only the items whose alert (raised or joined) is the team's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, or_, tuple_

from closeloop_alerts import repository
from closeloop_alerts.access import CallerAccess
from closeloop_alerts.alert_filters import (
    NONE_VALUE,
    STAGE_PATTERN,
    VALUE_PATTERN,
    check_range,
    place_conditions,
)
from closeloop_alerts.models import Feedback, SentimentScore
from closeloop_alerts.routes import MAX_PAGE
from closeloop_alerts.schemas import FeedbackOut, RelatedItemOut, SentimentOut
from closeloop_shared.contracts.alerts import AlertStatus
from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.contracts.sentiment import SentimentLabel
from closeloop_shared.http.observability import problem

# The rating types the KPIs aggregate (stars are stored but have no KPI).
KPI_RATINGS = ("nps", "csat", "ces")

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackPage(BaseModel):
    items: list[RelatedItemOut] = Field(
        description="Newest first (by when they occurred), each with its live score and "
        "the alert it raised or joined, if any."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


@dataclass(frozen=True, slots=True)
class FeedbackFilters:
    channel: Channel | None = None
    touchpoint: str | None = None
    journey_stage: str | None = None
    sentiments: tuple[SentimentLabel, ...] = ()
    rating_type: str | None = None
    topic: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on ``Feedback`` and its live ``SentimentScore`` (outer-joined)."""
        found: list[ColumnElement[bool]] = [Feedback.erased_at.is_(None)]
        if self.channel is not None:
            found.append(Feedback.channel == self.channel.value)
        found.extend(place_conditions(self.touchpoint, self.journey_stage))
        if self.sentiments:
            found.append(SentimentScore.label.in_([label.value for label in self.sentiments]))
        if self.rating_type is not None:
            found.append(Feedback.rating_type == self.rating_type)
            found.append(Feedback.rating_value.is_not(None))
        if self.topic == NONE_VALUE:
            # No live score counts as no topic, as in the KPIs.
            found.append(
                or_(
                    SentimentScore.id.is_(None), func.jsonb_array_length(SentimentScore.topics) == 0
                )
            )
        elif self.topic is not None:
            found.append(SentimentScore.topics.contains([self.topic]))
        if self.occurred_from is not None:
            found.append(Feedback.occurred_at >= self.occurred_from)
        if self.occurred_to is not None:
            found.append(Feedback.occurred_at < self.occurred_to)
        return found


def feedback_filters(
    channel: Annotated[Channel | None, Query(description="The item's channel.")] = None,
    touchpoint: Annotated[
        str | None,
        Query(pattern=VALUE_PATTERN, description="The item's touchpoint; `(none)`: none given."),
    ] = None,
    journey_stage: Annotated[
        str | None,
        Query(pattern=STAGE_PATTERN, description="The item's journey stage; `(none)`: none given."),
    ] = None,
    sentiment: Annotated[
        list[SentimentLabel] | None,
        Query(description="The live score's label; repeat for any of several."),
    ] = None,
    rating_type: Annotated[
        str | None,
        Query(
            pattern="^(" + "|".join(KPI_RATINGS) + ")$",
            description="Items with a rating of this type (nps, csat, ces).",
        ),
    ] = None,
    topic: Annotated[
        str | None,
        Query(pattern=VALUE_PATTERN, description="A topic of the live score; `(none)`: no topic."),
    ] = None,
    occurred_from: Annotated[
        datetime | None,
        Query(alias="from", description="Occurred at or after (ISO 8601 with a time zone)."),
    ] = None,
    occurred_to: Annotated[
        datetime | None, Query(alias="to", description="Occurred before (ISO 8601, time zone).")
    ] = None,
) -> FeedbackFilters:
    """A FastAPI dependency: the list's filters, validated (422 otherwise)."""
    check_range(occurred_from, occurred_to)
    return FeedbackFilters(
        channel=channel,
        touchpoint=touchpoint,
        journey_stage=journey_stage,
        sentiments=tuple(dict.fromkeys(sentiment or ())),
        rating_type=rating_type,
        topic=topic,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
    )


@router.get(
    "/feedback",
    response_model=FeedbackPage,
    responses={422: {"description": "Invalid filter, limit or cursor (JSON error)"}},
)
async def list_feedback(
    request: Request,
    access: CallerAccess,
    filters: Annotated[FeedbackFilters, Depends(feedback_filters)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> FeedbackPage | JSONResponse:
    """Stored feedback, newest first (by when it occurred); follow ``next_cursor`` for
    older pages. Every filter is applied in the database, so pages are exact."""
    try:
        # The alert list's keyset cursor, here on (occurred_at, id).
        position = repository.Cursor.decode(cursor) if cursor else None
    except repository.InvalidCursor as error:
        return problem(422, "invalid_cursor", str(error))
    conditions = filters.conditions()
    visible = access.alert_filter()
    if visible is not None:
        conditions.append(visible)
    if position is not None:
        conditions.append(
            tuple_(Feedback.occurred_at, Feedback.id) < tuple_(position.created_at, position.id)
        )
    statement = (
        repository.feedback_with_live_score_and_alert()
        .where(*conditions)
        .order_by(Feedback.occurred_at.desc(), Feedback.id.desc())
        .limit(limit + 1)
    )
    async with request.app.state.api.sessionmaker() as session:
        rows = (await session.execute(statement)).all()
        page = [
            (repository.reveal(session, feedback), score, alert)
            for feedback, score, alert in rows[:limit]
        ]
    next_cursor = None
    if len(rows) > limit and page:
        last = page[-1][0]
        next_cursor = repository.Cursor(last.occurred_at, last.id).encode()
    return FeedbackPage(
        items=[
            RelatedItemOut(
                feedback=FeedbackOut.of(feedback),
                sentiment=SentimentOut.of(score) if score else None,
                alert_id=alert.id if alert else None,
                alert_status=AlertStatus(alert.status) if alert else None,
            )
            for feedback, score, alert in page
        ],
        next_cursor=next_cursor,
    )
