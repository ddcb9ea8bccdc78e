"""Response and request bodies of the support API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from closeloop_alerts.models import (
    Alert,
    AlertEvent,
    AlertItem,
    Delivery,
    DeliveryAttempt,
    Feedback,
    SentimentScore,
)
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import Channel, FeedbackIn, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import SentimentLabel, Urgency


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
    topics: list[str] = []
    urgency: str | None = None
    emotions: dict[str, float] = Field(
        default_factory=dict, description="Emotion → intensity (0..1); only those found."
    )
    urgency_cues: list[str] = Field(
        default_factory=list,
        description="`kind: matched text` for each urgency cue, e.g. `cancel: close my account`.",
    )

    @classmethod
    def of(cls, row: SentimentScore) -> SentimentOut:
        return cls(
            topics=list(row.topics or []),
            urgency=row.urgency,
            emotions=dict(row.emotions or {}),
            urgency_cues=list(row.urgency_cues or []),
            label=SentimentLabel(row.label),
            score=row.score,
            confidence=row.confidence,
            language=row.language,
            model=row.model,
            model_version=row.model_version,
            scored_at=row.scored_at,
        )


class SlaOut(_Out):
    acknowledge_due_at: datetime | None
    resolve_due_at: datetime | None
    acknowledge_breached_at: datetime | None
    resolve_breached_at: datetime | None


class CustomerReplyOut(_Out):
    text: str | None
    status: str = Field(description="pending, published (to Kafka), sent or failed (reported).")
    requested_at: datetime | None
    detail: str | None

    @classmethod
    def of(cls, row: Alert) -> CustomerReplyOut | None:
        """The alert's reply, or None when its resolution carried none."""
        if row.customer_reply_status is None:
            return None
        return cls(
            text=row.customer_reply,
            status=row.customer_reply_status,
            requested_at=row.customer_reply_at,
            detail=row.customer_reply_detail,
        )


class CustomerReplyReceiptOut(_Out):
    """What a channel system gets for its report: the reply's state, nothing of the alert
    (a channel key reads no alerts)."""

    alert_id: uuid.UUID
    feedback_id: uuid.UUID
    customer_reply: CustomerReplyOut

    @classmethod
    def of(cls, row: Alert) -> CustomerReplyReceiptOut:
        reply = CustomerReplyOut.of(row)
        assert reply is not None  # a report needs a reply (else 422 no_customer_reply)
        return cls(alert_id=row.id, feedback_id=row.feedback_id, customer_reply=reply)


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
    kind: str = Field(default="item", description="item, or spike for an incident alert.")
    assignee: str | None = None
    root_cause: str | None = None
    escalation_level: int = 0
    escalated_at: datetime | None = None
    escalated_to: str | None = None
    reopened_count: int = 0
    item_count: int = Field(
        default=1, description="Feedback items in this alert (merged ones too)."
    )
    last_item_at: datetime | None = None
    incident_key: str | None = None
    sla: SlaOut | None = None
    customer_reply: CustomerReplyOut | None = None

    @classmethod
    def of(cls, row: Alert, channel: str) -> AlertOut:
        return cls(
            kind=row.kind,
            assignee=row.assignee,
            root_cause=row.root_cause,
            escalation_level=row.escalation_level,
            escalated_at=row.escalated_at,
            escalated_to=row.escalated_to,
            reopened_count=row.reopened_count,
            item_count=row.item_count,
            last_item_at=row.last_item_at,
            incident_key=row.incident_key,
            sla=SlaOut(
                acknowledge_due_at=row.ack_due_at,
                resolve_due_at=row.resolve_due_at,
                acknowledge_breached_at=row.ack_breached_at,
                resolve_breached_at=row.resolve_breached_at,
            ),
            customer_reply=CustomerReplyOut.of(row),
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
    event: str
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
            event=row.event,
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
    details: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: AlertEvent) -> AlertEventOut:
        return cls(
            type=row.type,
            from_status=AlertStatus(row.from_status) if row.from_status else None,
            to_status=AlertStatus(row.to_status),
            actor=row.actor,
            note=row.note,
            occurred_at=row.occurred_at,
            details=row.details,
        )


class JoinedItemOut(_Out):
    reason: str
    joined_at: datetime
    feedback: FeedbackOut

    @classmethod
    def of(cls, item: AlertItem, feedback: Feedback) -> JoinedItemOut:
        return cls(reason=item.reason, joined_at=item.joined_at, feedback=FeedbackOut.of(feedback))


class AlertDetailOut(AlertOut):
    feedback: FeedbackOut
    sentiment: SentimentOut
    deliveries: list[DeliveryOut]
    history: list[AlertEventOut]
    items: list[JoinedItemOut] = Field(
        default_factory=list, description="Items that joined this alert after it was raised."
    )


class FeedbackDetailOut(FeedbackOut):
    sentiment: SentimentOut | None
    alert: AlertOut | None


class RelatedItemOut(_Out):
    """Another item of the same customer: the item, its live score, its alert if any."""

    feedback: FeedbackOut
    sentiment: SentimentOut | None
    alert_id: uuid.UUID | None = Field(description="The alert it raised or joined, if any.")
    alert_status: AlertStatus | None = None


class RelatedFeedbackOut(_Out):
    feedback_id: uuid.UUID
    items: list[RelatedItemOut] = Field(description="Newest first (by when they occurred).")
    more: bool = Field(description="There are more than `limit` such items.")


def refuse_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    if isinstance(value, list):
        for item in value:
            refuse_nul(item)
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        # PostgreSQL text refuses U+0000: a 422 here, not a 500 there.
        return refuse_nul(data)


Text = Annotated[str, Field(min_length=1, max_length=4000)]
OwnerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]


class ResolveIn(_In):
    note: Text
    root_cause: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")] | None = None
    customer_reply: Text | None = Field(
        default=None,
        description="Sent to the customer on the item's original channel (published as a "
        "customer-reply event for the channel system).",
    )


class ReopenIn(_In):
    note: Text


class CommentIn(_In):
    text: Text


class AssignIn(_In):
    assignee: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    owner: OwnerId | None = None
    note: Text | None = None

    @model_validator(mode="after")
    def _something(self) -> AssignIn:
        if self.assignee is None and self.owner is None:
            raise ValueError("name an assignee, an owner or both")
        return self


class EscalateIn(_In):
    note: Text | None = None
    to_owner: OwnerId | None = None


class CustomerReplyStatusIn(_In):
    status: Literal["sent", "failed"]
    detail: Annotated[str, Field(max_length=1000)] | None = None


# --- owners -----------------------------------------------------------------------------------


class TargetOut(_Out):
    """A notify target without its credentials (URLs of bots and webhooks carry them)."""

    key: str
    type: str
    host: str | None = None
    to: list[str] | None = None
    signed: bool = False
    healthy: bool = True
    consecutive_failures: int = 0
    unhealthy_since: datetime | None = None


class WorkingHoursOut(_Out):
    days: list[str]
    start: str
    end: str


class OwnerOut(_Out):
    id: str
    name: str | None
    timezone: str | None
    working_hours: WorkingHoursOut | None
    escalation_owner: str | None
    redact_pii: bool | None = Field(
        default=None,
        description="Mask personal data in this owner's notifications: true for every "
        "target, false for none; null: chat tools and e-mail masked, webhooks not.",
    )
    managed_by: str = Field(description="file (seeded from the routing file) or api.")
    targets: list[TargetOut]
    updated_at: datetime | None


class OwnerList(_Out):
    items: list[OwnerOut]


# --- routing ----------------------------------------------------------------------------------


# Numbers must be JSON numbers: "0.5" is refused, as the published schema says.
Number = Annotated[float, Strict()] | Annotated[int, Strict()]


class DryRunSentiment(_In):
    label: SentimentLabel
    score: Annotated[Number, Field(ge=-1.0, le=1.0)]
    confidence: Annotated[Number, Field(ge=0.0, le=1.0)] = 1.0
    language: str = ""
    topics: list[str] = Field(default_factory=list)
    urgency: Urgency | None = None
    urgency_cues: list[str] = Field(default_factory=list)
    emotions: dict[str, Annotated[Number, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)


class DryRunIn(_In):
    feedback: FeedbackIn
    sentiment: DryRunSentiment


class RuleCheckOut(_Out):
    rule_id: str
    matched: bool
    failed: list[str] = Field(description="Conditions that did not hold.")


class DryRunSla(_Out):
    acknowledge_s: float | None
    resolve_s: float | None
    acknowledge_due_at: datetime | None
    resolve_due_at: datetime | None


class DryRunOut(_Out):
    alert: bool
    rule_id: str | None
    owner: str | None
    priority: AlertPriority | None
    escalation_owner: str | None
    sla: DryRunSla | None
    reason: str
    evaluation: Literal["first_match", "most_specific"]
    rules: list[RuleCheckOut] = Field(description="Every rule in evaluation order.")


# --- KPIs -------------------------------------------------------------------------------------


class SentimentMix(_Out):
    negative: int
    neutral: int
    positive: int


class KpiGroup(_Out):
    key: str = Field(description="The group's value, or (none).")
    volume: int
    sentiment: SentimentMix
    negative_share: float | None
    nps: float | None = Field(description="% promoters (9-10) minus % detractors (0-6).")
    nps_responses: int
    csat: float | None = Field(description="% of CSAT ratings that are 4 or 5.")
    csat_responses: int
    ces: float | None = Field(description="Mean CES rating (1-7).")
    ces_responses: int
    alerts: int
    mtta_s: float | None = Field(description="Mean seconds from raise to acknowledgement.")
    mttr_s: float | None = Field(description="Mean seconds from raise to resolution.")
    sla_compliance: float | None = Field(description="Share of alerts that breached no SLA.")


class KpiReport(_Out):
    start: datetime
    end: datetime
    group_by: str
    groups: list[KpiGroup]
    total: KpiGroup
