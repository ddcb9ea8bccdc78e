"""Request and response models of the gateway's own API, and of the alerts API it documents.

The alerts models mirror what the alerts service returns; the gateway never parses those
responses (it forwards the bytes), so they exist for the OpenAPI document only and allow
fields a newer alerts service may add.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from closeloop_gateway.auth import Scope
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import Channel, Feedback
from closeloop_shared.contracts.sentiment import Sentiment

# Printable ASCII only: the name travels upstream in the X-Closeloop-Actor header.
KeyName = Annotated[
    str,
    Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:@/\-]*$"),
]


class ProblemDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["unauthorized"])
    detail: str


class Problem(BaseModel):
    """Every error the gateway (or a service behind it) answers with."""

    error: ProblemDetail


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: KeyName
    scopes: Annotated[list[Scope], Field(min_length=1)]

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[Scope]) -> list[Scope]:
        return sorted(set(scopes))


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[Scope]
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None
    last_used_at: AwareDatetime | None = Field(
        description="When a gateway replica last loaded the key (precise to the cache TTL)."
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown once, in this response only; store it now.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


# --- alerts (documentation of the alerts service's API) ---------------------------------------


class AlertOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    feedback_id: uuid.UUID
    status: AlertStatus
    priority: AlertPriority
    owner: str = Field(description="The owner the routing rules chose.")
    rule_id: str | None
    channel: Channel
    created_at: AwareDatetime
    updated_at: AwareDatetime
    acknowledged_at: AwareDatetime | None
    acknowledged_by: str | None = Field(description="The API key name that acknowledged it.")
    resolved_at: AwareDatetime | None
    resolved_by: str | None
    resolution_note: str | None


class AlertPage(BaseModel):
    model_config = ConfigDict(extra="allow")

    items: list[AlertOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


class DeliveryAttemptOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    number: int
    attempted_at: AwareDatetime
    duration_s: float
    status_code: int | None
    error: str | None
    outcome: str


class DeliveryOut(BaseModel):
    """One notification of the alert to one of its owner's targets."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    owner: str
    target: str
    target_type: str
    webhook_id: str
    status: str
    attempt_count: int
    next_attempt_at: AwareDatetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: AwareDatetime
    delivered_at: AwareDatetime | None
    attempts: list[DeliveryAttemptOut]


class AlertEventOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    from_status: AlertStatus | None
    to_status: AlertStatus
    actor: str | None
    note: str | None
    occurred_at: AwareDatetime


class ResolveAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[str, Field(min_length=1, max_length=4000)]


class FeedbackRecord(Feedback):
    """A feedback item as the alerts service stored it."""

    model_config = ConfigDict(extra="allow", frozen=True)


class FeedbackDetail(FeedbackRecord):
    """A stored feedback item with its sentiment and the alert it raised, if any."""

    sentiment: Sentiment | None
    alert: AlertOut | None


class AlertDetail(AlertOut):
    """An alert with the item that raised it, its score, deliveries and audit trail."""

    feedback: FeedbackRecord
    sentiment: Sentiment
    deliveries: list[DeliveryOut]
    history: list[AlertEventOut]


# --- webhook answers (documentation of the ingest service's API) ------------------------------


class ItemAccepted(BaseModel):
    """Answer of the one-item webhooks; ``id`` is null when the item carried no customer text."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID | None
    ignored: dict[str, int] | None = None
    note: str | None = None


class ItemsAccepted(BaseModel):
    """Answer of the many-item webhooks (Meta, app reviews)."""

    model_config = ConfigDict(extra="allow")

    ids: list[uuid.UUID]
    ignored: dict[str, int] | None = None
    note: str | None = None
