"""Tables of the ``alerts`` schema.

Rows are written with bulk Core statements (``INSERT ... ON CONFLICT``), never one ORM
object at a time; the mapped classes exist for typed reads and for the migrations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from closeloop_shared.db.engine import make_base

SCHEMA = "alerts"

if TYPE_CHECKING:
    # mypy cannot subclass the value make_base() returns; it has exactly this shape.
    class Base(DeclarativeBase):
        pass
else:
    Base = make_base(SCHEMA)


def _now() -> Any:
    return func.now()


def tstz() -> DateTime:
    """Every timestamp is ``timestamptz``: naive datetimes never reach the database."""
    return DateTime(timezone=True)


ALERT_STATUSES = ("open", "acknowledged", "resolved")
ALERT_PRIORITIES = ("low", "medium", "high", "critical")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "disabled")
ATTEMPT_OUTCOMES = ("delivered", "retrying", "failed", "disabled")
ALERT_KINDS = ("item", "spike")
OWNER_MANAGERS = ("file", "api")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Feedback(Base):
    __tablename__ = "feedback"
    # KPIs and the feedback list select by when items occurred (newest first, keyset).
    __table_args__ = (Index("ix_feedback_occurred_at_id", "occurred_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    customer: Mapped[dict[str, Any]] = mapped_column(JSONB)
    rating_type: Mapped[str | None] = mapped_column(String(16))
    rating_value: Mapped[float | None] = mapped_column(Float)
    touchpoint: Mapped[str | None] = mapped_column(String(64))
    journey_stage: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(tstz())
    received_at: Mapped[datetime] = mapped_column(tstz())
    stored_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    # Set when the customer's data was erased (the row stays, anonymised, so a replay of
    # its Kafka event is recognised as already stored and does not bring it back).
    erased_at: Mapped[datetime | None] = mapped_column(tstz())


class CustomerIdentity(Base):
    """Blind indexes (``kind:<HMAC>``, see :mod:`closeloop_alerts.pii`) of the customer of each
    feedback item: how an erasure finds every item of a customer without decrypting."""

    __tablename__ = "customer_identity"
    __table_args__ = (Index("ix_customer_identity_feedback_id", "feedback_id"),)

    identity: Mapped[str] = mapped_column(String(320), primary_key=True)
    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True
    )


class PrivacyErasure(Base):
    """One erasure request: who asked, when, and how much it changed (never whose data)."""

    __tablename__ = "privacy_erasure"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(tstz())
    actor: Mapped[str | None] = mapped_column(String(256))
    reference: Mapped[str | None] = mapped_column(String(128))
    identifier_kinds: Mapped[list[str]] = mapped_column(JSONB)
    counts: Mapped[dict[str, int]] = mapped_column(JSONB)


class SentimentScore(Base):
    """One row per (feedback, model, model_version): a re-score by a new model is kept beside."""

    __tablename__ = "sentiment_score"
    __table_args__ = (UniqueConstraint("feedback_id", "model", "model_version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.id", ondelete="CASCADE")
    )
    label: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    topics: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    urgency: Mapped[str | None] = mapped_column(String(16))
    # Emotion → intensity (0..1) and "kind: matched text" urgency cues, as scored.
    emotions: Mapped[dict[str, float]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    urgency_cues: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # Unbounded: the contract does not limit these, and a length error would dead-letter.
    language: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(Text)
    scored_at: Mapped[datetime] = mapped_column(tstz())
    stored_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())


class Alert(Base):
    __tablename__ = "alert"
    __table_args__ = (
        # One item alert per feedback item, ever: redelivered events hit this and do
        # nothing. A spike incident also points at the item that tipped it over.
        Index(
            "ix_alert_item_feedback_id",
            "feedback_id",
            unique=True,
            postgresql_where=text("kind = 'item'"),
        ),
        Index("ix_alert_feedback_id", "feedback_id"),
        CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
        CheckConstraint(_one_of("priority", ALERT_PRIORITIES), name="priority"),
        CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
        # The SLA scanner looks only at alerts whose clock still runs.
        Index(
            "ix_alert_ack_due_at",
            "ack_due_at",
            postgresql_where=text("status = 'open' AND ack_breached_at IS NULL"),
        ),
        Index(
            "ix_alert_resolve_due_at",
            "resolve_due_at",
            postgresql_where=text("status <> 'resolved' AND resolve_breached_at IS NULL"),
        ),
        Index(
            "ix_alert_incident_key", "incident_key", postgresql_where=text("status <> 'resolved'")
        ),
        # Newest-first keyset pagination, with and without a status filter.
        Index("ix_alert_created_at_id", "created_at", "id"),
        Index("ix_alert_status_created_at_id", "status", "created_at", "id"),
        Index("ix_alert_owner_id_created_at_id", "owner_id", "created_at", "id"),
        # The open-alerts gauge counts only these rows.
        Index("ix_alert_open_priority", "priority", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.id", ondelete="CASCADE")
    )
    sentiment_score_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sentiment_score.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str] = mapped_column(String(128))
    rule_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(tstz())
    acknowledged_by: Mapped[str | None] = mapped_column(String(256))
    resolved_at: Mapped[datetime | None] = mapped_column(tstz())
    resolved_by: Mapped[str | None] = mapped_column(String(256))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # "item": raised by one feedback item (more may join it); "spike": an incident.
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'item'"))
    assignee: Mapped[str | None] = mapped_column(String(256))
    root_cause: Mapped[str | None] = mapped_column(String(64))
    escalation_level: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    escalated_at: Mapped[datetime | None] = mapped_column(tstz())
    escalated_to: Mapped[str | None] = mapped_column(String(128))
    reopened_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # SLA clocks: absolute deadlines, so a restart or another replica reads the same clock.
    ack_due_at: Mapped[datetime | None] = mapped_column(tstz())
    resolve_due_at: Mapped[datetime | None] = mapped_column(tstz())
    ack_breached_at: Mapped[datetime | None] = mapped_column(tstz())
    resolve_breached_at: Mapped[datetime | None] = mapped_column(tstz())
    # Items joined to this alert (the raising one included) and when the last one came.
    item_count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    last_item_at: Mapped[datetime | None] = mapped_column(tstz())
    incident_key: Mapped[str | None] = mapped_column(String(200))
    customer_reply: Mapped[str | None] = mapped_column(Text)
    customer_reply_status: Mapped[str | None] = mapped_column(String(16))
    customer_reply_at: Mapped[datetime | None] = mapped_column(tstz())
    customer_reply_detail: Mapped[str | None] = mapped_column(Text)


class AlertItem(Base):
    """A feedback item that joined an existing alert instead of raising its own."""

    __tablename__ = "alert_item"
    __table_args__ = (Index("ix_alert_item_alert_id", "alert_id"),)

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("feedback.id", ondelete="CASCADE"), primary_key=True
    )
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(tstz())


class AlertIdentity(Base):
    """The customer identities of an alert as blind indexes (``id:``, ``email:``, ``phone:``,
    ``handle:`` and an HMAC of the normalised value, see :mod:`closeloop_alerts.pii`)."""

    __tablename__ = "alert_identity"
    __table_args__ = (Index("ix_alert_identity_identity", "identity"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True
    )
    identity: Mapped[str] = mapped_column(String(320), primary_key=True)


class OwnerRecord(Base):
    """An owner as the admin API and the routing file define it (``definition`` is the
    owner's routing-file mapping, secrets included)."""

    __tablename__ = "owner"
    __table_args__ = (CheckConstraint(_one_of("managed_by", OWNER_MANAGERS), name="managed_by"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    managed_by: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())


class TargetHealth(Base):
    """Consecutive failures of one notify target; unhealthy targets fall back."""

    __tablename__ = "target_health"

    owner_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    target_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unhealthy_since: Mapped[datetime | None] = mapped_column(tstz())
    last_failure_at: Mapped[datetime | None] = mapped_column(tstz())
    last_success_at: Mapped[datetime | None] = mapped_column(tstz())


class AlertEvent(Base):
    """Audit trail of an alert: append-only (a trigger in the migration refuses UPDATE/DELETE).

    The one exception is an erasure (:mod:`closeloop_alerts.privacy`): inside a transaction
    that set ``closeloop.erasure``, ``note`` and ``details`` may be masked; nothing else of
    the row may change and rows are never deleted."""

    __tablename__ = "alert_event"
    __table_args__ = (Index("ix_alert_event_alert_id_id", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert.id"))
    type: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(256))
    note: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Delivery(Base):
    """One notification of one alert to one target of its owner (the delivery outbox)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("alert_id", "owner_id", "target_key", "event"),
        UniqueConstraint("webhook_id"),
        CheckConstraint(_one_of("status", DELIVERY_STATUSES), name="status"),
        # The dispatcher's "what is due" scan touches only pending rows.
        Index(
            "ix_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_delivery_target_pending",
            "owner_id",
            "target_key",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alert.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(String(128))
    target_key: Mapped[str] = mapped_column(String(128))
    target_type: Mapped[str] = mapped_column(String(16))
    # What the notification announces: alert.raised, alert.escalated, alert.assigned, ...
    event: Mapped[str] = mapped_column(String(32), server_default=text("'alert.raised'"))
    url: Mapped[str] = mapped_column(Text)
    webhook_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(tstz())
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    delivered_at: Mapped[datetime | None] = mapped_column(tstz())


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    __table_args__ = (
        CheckConstraint(_one_of("outcome", ATTEMPT_OUTCOMES), name="outcome"),
        Index("ix_delivery_attempt_delivery_id_number", "delivery_id", "number"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("delivery.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(tstz())
    duration_s: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))


class Outbox(Base):
    """Kafka events written in the same transaction as the change they describe."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_published_at", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(128))
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(tstz(), server_default=_now())
    published_at: Mapped[datetime | None] = mapped_column(tstz())
