"""What a generic webhook target receives: the Standard Webhooks body, headers and result."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from closeloop_alerts.models import Alert, Feedback, SentimentScore
from closeloop_alerts.pii import CLEAR_CUSTOMER_FIELDS
from closeloop_shared.redaction import redact_text

USER_AGENT = "Closeloop-Webhooks/1"
WEBHOOK_EVENT_TYPE = "alert.raised"


# --- Payload and signature ----------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render_payload(
    alert: Alert,
    feedback: Feedback,
    score: SentimentScore,
    event: str = WEBHOOK_EVENT_TYPE,
    at: datetime | None = None,
) -> bytes:
    """The body of ``event``; ``alert.raised`` is a snapshot of the alert as raised, identical
    on every retry. Later events (escalated, assigned, fallback) describe the alert now."""
    rating = (
        {"type": feedback.rating_type, "value": feedback.rating_value}
        if feedback.rating_type is not None
        else None
    )
    raised = event == WEBHOOK_EVENT_TYPE
    body: dict[str, Any] = {
        "type": event,
        # Later events: when the notification was queued, the same on every retry.
        "timestamp": _iso(alert.created_at if raised or at is None else at),
        "data": {
            "alert": {
                "id": str(alert.id),
                "priority": alert.priority,
                "owner": alert.owner_id,
                # The raise reports the status it was raised with.
                "status": "open" if raised else alert.status,
                "rule_id": alert.rule_id,
                "created_at": _iso(alert.created_at),
            },
            "feedback": {
                "id": str(feedback.id),
                "channel": feedback.channel,
                "external_id": feedback.external_id,
                "text": feedback.text,
                "subject": feedback.subject,
                "customer": feedback.customer,
                "occurred_at": _iso(feedback.occurred_at),
                "touchpoint": feedback.touchpoint,
                "journey_stage": feedback.journey_stage,
                "rating": rating,
            },
            "sentiment": {
                "label": score.label,
                "score": score.score,
                "confidence": score.confidence,
                "language": score.language,
                "model": score.model,
                "model_version": score.model_version,
            },
        },
    }
    if not raised:
        body["data"]["alert"].update(
            {
                "assignee": alert.assignee,
                "escalation_level": alert.escalation_level,
                "escalated_to": alert.escalated_to,
                "item_count": alert.item_count,
            }
        )
    return orjson.dumps(body)


def masked(feedback: Feedback) -> Feedback:
    """A detached copy of an item with its personal data masked: the contact fields
    dropped (the tier stays), and in the text, subject and external id every e-mail, phone,
    card and ID number, and every occurrence of the customer's own contact values."""
    known = [
        str(value)
        for name, value in feedback.customer.items()
        if name not in CLEAR_CUSTOMER_FIELDS and value
    ]
    return Feedback(
        id=feedback.id,
        channel=feedback.channel,
        external_id=redact_text(feedback.external_id, known),
        text=redact_text(feedback.text, known),
        subject=redact_text(feedback.subject, known) if feedback.subject is not None else None,
        customer={k: v for k, v in feedback.customer.items() if k in CLEAR_CUSTOMER_FIELDS},
        rating_type=feedback.rating_type,
        rating_value=feedback.rating_value,
        touchpoint=feedback.touchpoint,
        journey_stage=feedback.journey_stage,
        language=feedback.language,
        attributes={},
        occurred_at=feedback.occurred_at,
        received_at=feedback.received_at,
    )


def signed_headers(secret: str, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for one attempt; the signature covers exactly ``body``."""
    timestamp = datetime.fromtimestamp(math.floor(now.timestamp()), tz=UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body.decode()),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# --- Attempt results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    duration_s: float
    status_code: int | None
    error: str | None
    retry_after_s: float | None = None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
