"""Alert lifecycle: the states an alert moves through and the events it emits."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime

from closeloop_shared.contracts.feedback import Channel, ContractModel


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertLifecycle(ContractModel):
    """Payload of every alert lifecycle event (raised, acknowledged, resolved)."""

    alert_id: uuid.UUID
    feedback_id: uuid.UUID
    status: AlertStatus
    priority: AlertPriority
    owner_id: str
    rule_id: str | None = None
    actor: str | None = None
    note: str | None = None
    occurred_at: AwareDatetime


class CustomerReplyRequest(ContractModel):
    """Asks the channel system that received an item to send ``text`` to its customer.

    Published when support resolves an alert with a reply; the channel system reports
    back whether it was sent (``POST /v1/alerts/{id}/customer-reply``).
    """

    reply_id: uuid.UUID  # the CloudEvent id as well: stable, for dedupe
    alert_id: uuid.UUID
    feedback_id: uuid.UUID
    channel: Channel
    external_id: str
    # The contact as the channel knows it: id, name, email, phone, handle (what it carried).
    contact: dict[str, str]
    subject: str | None = None
    text: str
    language: str | None = None
    actor: str | None = None
    requested_at: AwareDatetime
