"""Alert lifecycle: the states an alert moves through and the events it emits."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime

from closeloop_shared.contracts.feedback import ContractModel


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
