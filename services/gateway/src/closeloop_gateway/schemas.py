"""Request and response models of the gateway's own API, and of the alerts API it documents.

The alerts models mirror what the alerts service returns; the gateway never parses those
responses (it forwards the bytes), so they exist for the OpenAPI document only and allow
fields a newer alerts service may add.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from closeloop_gateway.auth import ROLE_SCOPES, TEAM_ROLES, Role, Scope, legacy_role
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import Channel, Feedback, FeedbackIn
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel, Urgency

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


# An owner id from the routing file (the alerts service's own pattern); it travels
# upstream in the X-Closeloop-Team header.
TeamId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$",
        description="The owner id (routing) whose alerts an agent or lead works.",
        examples=["hotline-team"],
    ),
]


class ApiKeyCreate(BaseModel):
    """A new key. ``role`` sets the most it may do (and its default scopes); ``scopes``
    may narrow that. Without a role (clients from before roles), the role follows the
    scopes as it did for existing keys: feedback-only keys are ``channel``, others ``admin``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: KeyName
    role: Role | None = None
    team: TeamId | None = None
    scopes: Annotated[list[Scope] | None, Field(min_length=1)] = None

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, scopes: list[Scope] | None) -> list[Scope] | None:
        return None if scopes is None else sorted(set(scopes))

    @model_validator(mode="after")
    def _fits_role(self) -> ApiKeyCreate:
        if self.role is None and self.scopes is None:
            raise ValueError("give a role, scopes, or both")
        role = self.role or legacy_role(frozenset(self.scopes or ()))
        if role in TEAM_ROLES and self.team is None:
            raise ValueError(f"a {role.value} key needs a team (an owner id, e.g. hotline-team)")
        if role not in TEAM_ROLES and self.team is not None:
            raise ValueError(f"a {role.value} key has no team; only agent and lead keys do")
        ceiling = ROLE_SCOPES[role]
        beyond = sorted(set(self.scopes or ()) - ceiling)
        if beyond:
            allowed = ", ".join(sorted(ceiling))
            raise ValueError(
                f"a {role.value} key cannot hold {', '.join(beyond)} (at most: {allowed})"
            )
        self.role = role
        if self.scopes is None:
            self.scopes = sorted(ceiling)
        return self


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    role: Role
    team: str | None = Field(description="The team (owner id) of an agent or lead key.")
    scopes: list[Scope]
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None
    last_used_at: AwareDatetime | None = Field(
        description="When a gateway replica last loaded the key (precise to the cache TTL)."
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown once, in this response only; store it now.")


class ApiKeyRotated(ApiKeyCreated):
    replaces: uuid.UUID = Field(description="The key this one replaces.")
    replaced_revoked: bool = Field(description="Whether the old key was revoked (not keep_old).")


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
    kind: Literal["item", "spike"] = Field(
        default="item", description="An item's alert, or an incident for a spike."
    )
    assignee: str | None = None
    root_cause: str | None = None
    escalation_level: int = 0
    escalated_at: AwareDatetime | None = None
    escalated_to: str | None = Field(default=None, description="Who the alert escalated to.")
    reopened_count: int = 0
    item_count: int = Field(default=1, description="Feedback items in the alert, merged ones too.")
    last_item_at: AwareDatetime | None = None
    incident_key: str | None = Field(
        default=None, description="For spikes: the dimension and value, e.g. touchpoint:checkout."
    )
    sla: AlertSla | None = None
    customer_reply: CustomerReply | None = None


class AlertSla(BaseModel):
    model_config = ConfigDict(extra="allow")

    acknowledge_due_at: AwareDatetime | None
    resolve_due_at: AwareDatetime | None
    acknowledge_breached_at: AwareDatetime | None
    resolve_breached_at: AwareDatetime | None


class CustomerReply(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str | None
    status: str = Field(description="pending, published (to Kafka), sent or failed (reported).")
    requested_at: AwareDatetime | None
    detail: str | None


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
    target_type: str = Field(description="webhook, slack, email, wecom, dingtalk or feishu.")
    event: str = Field(
        default="alert.raised",
        description="alert.raised, alert.escalated, alert.assigned or alert.fallback.",
    )
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
    details: dict[str, Any] | None = None


Note = Annotated[str, Field(min_length=1, max_length=4000)]
OwnerRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]


class ResolveAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note
    root_cause: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")] | None = (
        Field(default=None, description="A root-cause category (the routing file may list them).")
    )
    customer_reply: Note | None = Field(
        default=None,
        description="Published for the item's channel system to send to the customer.",
    )


class ReopenAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note


class CommentAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Note


class AssignAlertIn(BaseModel):
    """At least one of assignee (a person) and owner (hand over; the new owner is notified)."""

    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    owner: OwnerRef | None = None
    note: Note | None = None


class EscalateAlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note | None = None
    to_owner: OwnerRef | None = Field(
        default=None, description="Default: the escalation owner of whoever has the alert."
    )


class CustomerReplyStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["sent", "failed"]
    detail: Annotated[str, Field(max_length=1000)] | None = None


class CustomerReplyReceipt(BaseModel):
    """A channel key's answer to its report: the reply's state, nothing of the alert."""

    model_config = ConfigDict(extra="allow")

    alert_id: uuid.UUID
    feedback_id: uuid.UUID
    customer_reply: CustomerReply


class CustomerReplyReported(RootModel[AlertOut | CustomerReplyReceipt]):
    """The alert (keys with alerts:write), or a receipt (channel keys)."""


# --- privacy (documentation of the alerts service's erasure API) -------------------------------

# A NUL-free value with something besides whitespace in it.
ErasureIdentifier = Annotated[
    str, Field(min_length=1, max_length=320, pattern=r"^[^\x00]*\S[^\x00]*$")
]


class ErasureIn(BaseModel):
    """At least one identifier of the customer; every stored item carrying any of them is
    erased, and so is every item carrying another identifier those items had."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["customer_id"]},
                {"required": ["email"]},
                {"required": ["phone"]},
                {"required": ["handle"]},
            ]
        },
    )

    customer_id: ErasureIdentifier | None = None
    email: ErasureIdentifier | None = None
    phone: ErasureIdentifier | None = None
    handle: ErasureIdentifier | None = None
    reference: Annotated[str, Field(max_length=128, pattern=r"^[^\x00]*$")] | None = Field(
        default=None, description="Your reference for the request (a ticket id); recorded."
    )


class ErasureCounts(BaseModel):
    model_config = ConfigDict(extra="allow")

    feedback: int
    alerts: int
    customer_identities: int
    alert_identities: int
    audit_entries_masked: int
    outbox_events: int


class ErasureOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: uuid.UUID = Field(description="The erasure's record (alerts.privacy_erasure).")
    requested_at: AwareDatetime
    counts: ErasureCounts


# --- owners, routing, KPIs (documentation of the alerts service's API) -------------------------


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _work_week() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class WorkingHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Weekday] = Field(default_factory=_work_week)
    start: str = Field(default="09:00", examples=["09:00"])
    end: str = Field(default="17:00", examples=["17:00"])


class OwnerIn(BaseModel):
    """An owner as in the routing file (secrets are stored and never returned)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    notify: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Targets: {type: webhook, url, secret: whsec_...}, {type: slack, url}, "
        "{type: email, to: [...]}, {type: wecom, url}, {type: dingtalk, url, secret?}, "
        "{type: feishu, url, secret?}; each may carry an id.",
    )
    timezone: str | None = Field(default=None, examples=["Asia/Shanghai"])
    working_hours: WorkingHours | None = None
    escalation_owner: OwnerRef | None = None
    redact_pii: bool | None = Field(
        default=None,
        description="Mask personal data in notifications: true for every target, false for "
        "none; unset: chat tools and e-mail masked, webhooks not.",
    )


class TargetOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str
    type: str
    host: str | None = None
    to: list[str] | None = None
    signed: bool = False
    healthy: bool = True
    consecutive_failures: int = 0
    unhealthy_since: AwareDatetime | None = None


class OwnerOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str | None
    timezone: str | None
    working_hours: WorkingHours | None
    escalation_owner: str | None
    redact_pii: bool | None = Field(
        default=None,
        description="The owner's choice (null: chat tools and e-mail masked, webhooks not).",
    )
    managed_by: Literal["file", "api"]
    targets: list[TargetOut]
    updated_at: AwareDatetime | None


class OwnerList(BaseModel):
    model_config = ConfigDict(extra="allow")

    items: list[OwnerOut]


class DryRunSentimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: SentimentLabel
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    language: str = ""
    topics: list[str] = Field(default_factory=list)
    urgency: Urgency | None = None
    urgency_cues: list[str] = Field(default_factory=list)
    emotions: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)


class DryRunIn(BaseModel):
    """A feedback item as submitted and the sentiment it would carry."""

    model_config = ConfigDict(extra="forbid")

    feedback: FeedbackIn
    sentiment: DryRunSentimentIn


class RuleCheck(BaseModel):
    model_config = ConfigDict(extra="allow")

    rule_id: str
    matched: bool
    failed: list[str] = Field(description="The conditions that did not hold.")


class DryRunSla(BaseModel):
    model_config = ConfigDict(extra="allow")

    acknowledge_s: float | None
    resolve_s: float | None
    acknowledge_due_at: AwareDatetime | None
    resolve_due_at: AwareDatetime | None


class DryRunOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    alert: bool
    rule_id: str | None
    owner: str | None
    priority: AlertPriority | None
    escalation_owner: str | None
    sla: DryRunSla | None
    reason: str
    evaluation: Literal["first_match", "most_specific"]
    rules: list[RuleCheck] = Field(description="Every rule, in evaluation order.")


class KpiSentimentMix(BaseModel):
    model_config = ConfigDict(extra="allow")

    negative: int
    neutral: int
    positive: int


class KpiGroup(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str
    volume: int
    sentiment: KpiSentimentMix
    negative_share: float | None
    nps: float | None
    nps_responses: int
    csat: float | None
    csat_responses: int
    ces: float | None
    ces_responses: int
    alerts: int
    mtta_s: float | None
    mttr_s: float | None
    sla_compliance: float | None


class KpiReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    start: AwareDatetime
    end: AwareDatetime
    group_by: str
    groups: list[KpiGroup]
    total: KpiGroup


# Bodies the gateway forwards unparsed: their schemas join the document's components.
ALERT_REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ResolveAlertIn,
    ReopenAlertIn,
    CommentAlertIn,
    AssignAlertIn,
    EscalateAlertIn,
    CustomerReplyStatusIn,
    OwnerIn,
    DryRunIn,
    ErasureIn,
)


class FeedbackRecord(Feedback):
    """A feedback item as the alerts service stored it."""

    model_config = ConfigDict(extra="allow", frozen=True)


class FeedbackDetail(FeedbackRecord):
    """A stored feedback item with its sentiment and the alert it raised, if any."""

    sentiment: Sentiment | None
    alert: AlertOut | None


class JoinedItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: str = Field(description="merge (same customer) or spike (incident).")
    joined_at: AwareDatetime
    feedback: FeedbackRecord


class AlertDetail(AlertOut):
    """An alert with the item that raised it, its score, deliveries and audit trail."""

    feedback: FeedbackRecord
    sentiment: Sentiment
    deliveries: list[DeliveryOut]
    history: list[AlertEventOut]
    items: list[JoinedItem] = Field(
        default_factory=list, description="Items that joined the alert after it was raised."
    )


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


class RelatedItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    feedback: FeedbackRecord
    sentiment: Sentiment | None = Field(description="The item's live score.")
    alert_id: uuid.UUID | None = Field(description="The alert it raised or joined, if any.")
    alert_status: AlertStatus | None = None


class RelatedFeedback(BaseModel):
    """The same customer's other feedback items (any channel), newest first."""

    model_config = ConfigDict(extra="allow")

    feedback_id: uuid.UUID
    items: list[RelatedItem]
    more: bool = Field(description="There are more than `limit` such items.")


class FeedbackPage(BaseModel):
    """Stored feedback, newest first (by when it occurred)."""

    model_config = ConfigDict(extra="allow")

    items: list[RelatedItem] = Field(
        description="Each item with its live score and the alert it raised or joined."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


class ScoreHistoryEntry(Sentiment):
    model_config = ConfigDict(extra="allow")

    live: bool = Field(description="The score the pipeline acted on (routing, alerts, KPIs).")
    raised_alert: bool = Field(description="The score the item's alert was raised from.")
    stored_at: AwareDatetime


class ScoreHistory(BaseModel):
    """Every stored score of an item (the live one and re-scores by other model versions)."""

    model_config = ConfigDict(extra="allow")

    feedback_id: uuid.UUID
    live: ScoreHistoryEntry
    scores: list[ScoreHistoryEntry] = Field(description="The live score first, then as stored.")
