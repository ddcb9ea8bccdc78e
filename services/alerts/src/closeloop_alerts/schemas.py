"""Response and request bodies of the support API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from closeloop_alerts.models import (
    Alert,
    AlertEvent,
    Delivery,
    DeliveryAttempt,
    Feedback,
    SentimentScore,
)
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import Channel, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import SentimentLabel


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RatingOut(_Out):
    type: RatingType
    value: float


class FeedbackOut(_Out):
    id: uuid.UUID
    channel: Channel
    external_id: str
    text: str
    subject: str | None
    customer: dict[str, Any]
    rating: RatingOut | None
    touchpoint: str | None
    journey_stage: JourneyStage | None
    language: str | None
    attributes: dict[str, Any]
    occurred_at: datetime
    received_at: datetime

    @classmethod
    def of(cls, row: Feedback) -> FeedbackOut:
        rating = None
        if row.rating_type is not None and row.rating_value is not None:
            rating = RatingOut(type=RatingType(row.rating_type), value=row.rating_value)
        return cls(
            id=row.id,
            channel=Channel(row.channel),
            external_id=row.external_id,
            text=row.text,
            subject=row.subject,
            customer=row.customer,
            rating=rating,
            touchpoint=row.touchpoint,
            journey_stage=JourneyStage(row.journey_stage) if row.journey_stage else None,
            language=row.language,
            attributes=row.attributes,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
        )


class SentimentOut(_Out):
    label: SentimentLabel
    score: float
    confidence: float
    language: str
    model: str
    model_version: str
    scored_at: datetime

    @classmethod
    def of(cls, row: SentimentScore) -> SentimentOut:
        return cls(
            label=SentimentLabel(row.label),
            score=row.score,
            confidence=row.confidence,
            language=row.language,
            model=row.model,
            model_version=row.model_version,
            scored_at=row.scored_at,
        )


class AlertOut(_Out):
    id: uuid.UUID
    feedback_id: uuid.UUID
    status: AlertStatus
    priority: AlertPriority
    owner: str
    rule_id: str | None
    channel: Channel
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @classmethod
    def of(cls, row: Alert, channel: str) -> AlertOut:
        return cls(
            id=row.id,
            feedback_id=row.feedback_id,
            status=AlertStatus(row.status),
            priority=AlertPriority(row.priority),
            owner=row.owner_id,
            rule_id=row.rule_id,
            channel=Channel(channel),
            created_at=row.created_at,
            updated_at=row.updated_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            resolution_note=row.resolution_note,
        )


class AlertPage(_Out):
    items: list[AlertOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


class AttemptOut(_Out):
    number: int
    attempted_at: datetime
    duration_s: float
    status_code: int | None
    error: str | None
    outcome: str

    @classmethod
    def of(cls, row: DeliveryAttempt) -> AttemptOut:
        return cls(
            number=row.number,
            attempted_at=row.attempted_at,
            duration_s=row.duration_s,
            status_code=row.status_code,
            error=row.error,
            outcome=row.outcome,
        )


class DeliveryOut(_Out):
    """A notification of the alert; the URL is left out because URLs can carry credentials."""

    id: uuid.UUID
    owner: str
    target: str
    target_type: str
    webhook_id: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, row: Delivery, attempts: list[DeliveryAttempt]) -> DeliveryOut:
        return cls(
            id=row.id,
            owner=row.owner_id,
            target=row.target_key,
            target_type=row.target_type,
            webhook_id=row.webhook_id,
            status=row.status,
            attempt_count=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            attempts=[AttemptOut.of(attempt) for attempt in attempts],
        )


class AlertEventOut(_Out):
    type: str
    from_status: AlertStatus | None
    to_status: AlertStatus
    actor: str | None
    note: str | None
    occurred_at: datetime

    @classmethod
    def of(cls, row: AlertEvent) -> AlertEventOut:
        return cls(
            type=row.type,
            from_status=AlertStatus(row.from_status) if row.from_status else None,
            to_status=AlertStatus(row.to_status),
            actor=row.actor,
            note=row.note,
            occurred_at=row.occurred_at,
        )


class AlertDetailOut(AlertOut):
    feedback: FeedbackOut
    sentiment: SentimentOut
    deliveries: list[DeliveryOut]
    history: list[AlertEventOut]


class FeedbackDetailOut(FeedbackOut):
    sentiment: SentimentOut | None
    alert: AlertOut | None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: Annotated[str, Field(min_length=1, max_length=4000)]
