"""The consumer's batch handler: store scored feedback, raise alerts, queue notifications.

One batch is one transaction: feedback, scores, alerts, their audit entries, the
deliveries (the notification outbox) and the ``alert.raised`` lifecycle events commit
together or not at all, and the consumer commits the Kafka offsets only afterwards.
Redelivery is harmless: feedback rows are ``ON CONFLICT DO NOTHING``, scores are
upserted, and the unique alert per feedback item means a second copy of an event finds
its alert already there, so it creates no second alert, delivery or event.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.access import sees
from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.metrics import (
    ALERTS_MERGED,
    ALERTS_RAISED,
    ESCALATIONS,
    FEEDBACK_STORED,
    TIME_TO_ACKNOWLEDGE,
    TIME_TO_RESOLVE,
)
from closeloop_alerts.models import (
    Alert,
    AlertEvent,
    Feedback,
    Outbox,
)
from closeloop_alerts.outbox import (
    ALERT_ASSIGNED,
    ALERT_COMMENTED,
    ALERT_ESCALATED,
    ALERT_REOPENED,
    customer_reply_row,
    lifecycle_row,
)
from closeloop_alerts.pii import identities as identities  # re-exported (moved to pii)
from closeloop_alerts.routing import Owner, RouteDecision, Router, RoutingState, default_routing
from closeloop_alerts.sla import deadlines
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus, CustomerReplyRequest
from closeloop_shared.contracts.sentiment import ScoredFeedback
from closeloop_shared.events import FeedbackScoredEvent
from closeloop_shared.kafka.consumer import Received, TransientError
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

# Namespace of webhook ids: uuid5(namespace, "<alert id>:<owner>:<target>") is the same on
# every retry and on every replica, as Standard Webhooks asks.
WEBHOOK_ID_NAMESPACE = uuid.UUID("0b9f6f57-59a4-4b07-8a52-6f8f0c6f2d11")


def webhook_id(alert_id: uuid.UUID, owner_id: str, target_key: str) -> str:
    return f"msg_{uuid.uuid5(WEBHOOK_ID_NAMESPACE, f'{alert_id}:{owner_id}:{target_key}').hex}"


def decode_event(raw: bytes) -> FeedbackScoredEvent:
    return FeedbackScoredEvent.model_validate_json(raw)


def _without_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB refuse U+0000; customer text may contain it. Replace it
    rather than let one such message be dead-lettered."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def feedback_row(item: ScoredFeedback) -> dict[str, Any]:
    feedback = item.feedback
    row = {
        "id": feedback.id,
        "channel": feedback.channel.value,
        "external_id": feedback.external_id,
        "text": feedback.text,
        "subject": feedback.subject,
        "customer": feedback.customer.model_dump(mode="json", exclude_none=True),
        "rating_type": feedback.rating.type.value if feedback.rating else None,
        "rating_value": feedback.rating.value if feedback.rating else None,
        "touchpoint": feedback.touchpoint,
        "journey_stage": feedback.journey_stage.value if feedback.journey_stage else None,
        "language": feedback.language,
        "attributes": feedback.attributes,
        "occurred_at": feedback.occurred_at,
        "received_at": feedback.received_at,
    }
    return {key: _without_nul(value) for key, value in row.items()}


def score_row(item: ScoredFeedback) -> dict[str, Any]:
    sentiment = item.sentiment
    urgency = getattr(sentiment, "urgency", None)
    row = {
        "topics": [str(topic) for topic in getattr(sentiment, "topics", None) or []],
        "urgency": str(getattr(urgency, "value", urgency)) if urgency is not None else None,
        "emotions": {
            str(emotion): float(intensity)
            for emotion, intensity in (getattr(sentiment, "emotions", None) or {}).items()
        },
        "urgency_cues": [str(cue) for cue in getattr(sentiment, "urgency_cues", None) or []],
        "feedback_id": item.feedback.id,
        "label": sentiment.label.value,
        "score": sentiment.score,
        "confidence": sentiment.confidence,
        "language": sentiment.language,
        "model": sentiment.model,
        "model_version": sentiment.model_version,
        "scored_at": sentiment.scored_at,
    }
    return {key: _without_nul(value) for key, value in row.items()}


PRIORITY_RANK = {p: rank for rank, p in enumerate(AlertPriority)}


def delivery_rows(
    alert_id: uuid.UUID, owner: Owner, event: str, now: datetime, first_delay: timedelta
) -> list[dict[str, Any]]:
    """One delivery per notify target of ``owner`` announcing ``event`` about the alert."""
    rows = []
    for target_key, target in owner.targets():
        # The raise keeps its historic id; later events get their own, equally stable.
        key = target_key if event == "alert.raised" else f"{target_key}:{event}"
        rows.append(
            {
                "id": uuid.uuid4(),
                "alert_id": alert_id,
                "owner_id": owner.id,
                "target_key": target_key,
                "target_type": target.type,
                "event": event,
                "url": str(target.url),
                "webhook_id": webhook_id(alert_id, owner.id, key),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now + first_delay,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def audit_row(
    alert_id: uuid.UUID,
    kind: str,
    *,
    from_status: str | None,
    to_status: str,
    actor: str | None,
    note: str | None,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "type": kind,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "note": note,
        "occurred_at": now,
        "details": details,
    }


def alert_event_row(
    alert: Alert, event_type: str | None, *, actor: str | None, note: str | None, now: datetime
) -> dict[str, Any]:
    return lifecycle_row(
        event_type=event_type,
        alert_id=alert.id,
        feedback_id=alert.feedback_id,
        status=AlertStatus(alert.status),
        priority=AlertPriority(alert.priority),
        owner_id=alert.owner_id,
        rule_id=alert.rule_id,
        actor=actor,
        note=note,
        occurred_at=now,
    )


@dataclass(frozen=True)
class BatchOutcome:
    feedback_stored: int
    alerts_raised: int
    deliveries_queued: int
    items_merged: int = 0


@dataclass(frozen=True)
class _Planned:
    """An alert this batch would raise, unless its feedback item has one already."""

    id: uuid.UUID
    item: ScoredFeedback
    decision: RouteDecision

    @property
    def feedback_id(self) -> uuid.UUID:
        return self.item.feedback.id

    def row(self, score_ids: dict[repository.ScoreKey, int], now: datetime) -> dict[str, Any]:
        sentiment = self.item.sentiment
        ack_due, resolve_due = deadlines(now, self.decision.sla, self.decision.owner)
        return {
            "id": self.id,
            "feedback_id": self.feedback_id,
            "sentiment_score_id": score_ids[
                (self.feedback_id, sentiment.model, sentiment.model_version)
            ],
            "status": AlertStatus.OPEN.value,
            "priority": self.decision.priority.value,
            "owner_id": self.decision.owner.id,
            "rule_id": self.decision.rule_id,
            "created_at": now,
            "updated_at": now,
            "kind": "item",
            "item_count": 1,
            "last_item_at": now,
            "ack_due_at": ack_due,
            "resolve_due_at": resolve_due,
        }

    def raised_event(self, now: datetime) -> dict[str, Any]:
        rule = self.decision.rule_id
        return audit_row(
            self.id,
            "raised",
            from_status=None,
            to_status=AlertStatus.OPEN.value,
            actor=None,
            note=f"rule {rule}" if rule else "no rule matched: default owner",
            now=now,
        )

    def lifecycle(self, now: datetime) -> dict[str, Any]:
        return lifecycle_row(
            alert_id=self.id,
            feedback_id=self.feedback_id,
            status=AlertStatus.OPEN,
            priority=self.decision.priority,
            owner_id=self.decision.owner.id,
            rule_id=self.decision.rule_id,
            actor=None,
            note=None,
            occurred_at=now,
        )


class AlertIntake:
    """Handles batches of ``feedback.scored`` events (see the module docstring)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        routing: RoutingState,
        *,
        on_deliveries: Callable[[], None] = lambda: None,
        on_outbox: Callable[[], None] = lambda: None,
        first_delay_s: float = 0.0,
        clock: Clock = system_clock,
    ) -> None:
        self._first_delay = timedelta(seconds=first_delay_s)
        self._sessionmaker = sessionmaker
        self._routing = routing
        self._on_deliveries = on_deliveries
        self._on_outbox = on_outbox
        self._clock = clock

    async def handle(self, batch: Sequence[Received[FeedbackScoredEvent]]) -> None:
        await self.process([received.value.data for received in batch])

    async def process(self, items: Sequence[ScoredFeedback]) -> BatchOutcome:
        try:
            return await self._process(items)
        except Exception as error:
            # Deadlocks, failovers and dropped connections are the database's state, not a
            # bad message: retry the batch instead of dead-lettering it.
            if repository.is_retryable(error):
                raise TransientError(type(error).__name__) from error
            raise

    async def _process(self, items: Sequence[ScoredFeedback]) -> BatchOutcome:
        # Copies of one item in a batch collapse to the latest scoring; rows are sorted by
        # key so that concurrent batches on several replicas lock them in the same order.
        latest: dict[uuid.UUID, ScoredFeedback] = {}
        scores: dict[tuple[uuid.UUID, str, str], ScoredFeedback] = {}
        for item in items:
            current = latest.get(item.feedback.id)
            if current is None or item.sentiment.scored_at >= current.sentiment.scored_at:
                latest[item.feedback.id] = item
            key = (item.feedback.id, item.sentiment.model, item.sentiment.model_version)
            known = scores.get(key)
            if known is None or item.sentiment.scored_at >= known.sentiment.scored_at:
                scores[key] = item
        feedback_ids = sorted(latest)
        router = self._routing.router
        decisions: dict[uuid.UUID, RouteDecision] = {}
        for feedback_id in feedback_ids:
            decision = router.route(latest[feedback_id])
            if decision is not None:
                decisions[feedback_id] = decision

        now = self._clock()
        planned = [
            _Planned(uuid.uuid4(), latest[feedback_id], decision)
            for feedback_id, decision in decisions.items()
        ]
        merge = router.config.merge
        merged = 0
        async with self._sessionmaker() as session, session.begin():
            stored = await repository.insert_feedback(
                session, [feedback_row(latest[i]) for i in feedback_ids]
            )
            score_ids = await repository.upsert_scores(
                session, [score_row(scores[key]) for key in sorted(scores)]
            )
            events: list[dict[str, Any]] = []
            if merge is not None and merge.enabled and planned:
                planned, merged_events = await self._merge(
                    session, planned, now, timedelta(seconds=merge.window)
                )
                merged = len(merged_events)
                events.extend(merged_events)
            raised = set(
                await repository.insert_alerts(
                    session, [alert.row(score_ids, now) for alert in planned]
                )
            )
            new_alerts = [alert for alert in planned if alert.id in raised]
            deliveries: list[dict[str, Any]] = []
            outbox: list[dict[str, Any]] = []
            identity_rows: list[dict[str, Any]] = []
            unhealthy = await repository.unhealthy_targets(session) if new_alerts else set()
            for alert in new_alerts:
                events.append(alert.raised_event(now))
                owner = alert.decision.owner
                deliveries.extend(
                    delivery_rows(alert.id, owner, "alert.raised", now, self._first_delay)
                )
                targets = [key for key, _ in owner.targets()]
                if targets and all((owner.id, key) in unhealthy for key in targets):
                    # Every target of the owner keeps failing: tell the escalation owner too.
                    backup = router.escalation_owner(owner.id)
                    if backup is not None:
                        deliveries.extend(
                            delivery_rows(
                                alert.id, backup, "alert.fallback", now, self._first_delay
                            )
                        )
                outbox.append(alert.lifecycle(now))
                for identity in identities(alert.item.feedback.customer):
                    identity_rows.append({"alert_id": alert.id, "identity": identity})
            await repository.insert_rows(session, AlertEvent, events)
            await repository.insert_deliveries(session, deliveries)
            await repository.insert_rows(session, Outbox, outbox)
            await repository.insert_identities(session, identity_rows)

        # Counted after the commit: a rolled-back batch is retried and must not count twice.
        for feedback_id in stored:
            FEEDBACK_STORED.labels(latest[feedback_id].feedback.channel.value).inc()
        for alert in new_alerts:
            ALERTS_RAISED.labels(
                alert.decision.priority.value, alert.item.feedback.channel.value
            ).inc()
        if merged:
            ALERTS_MERGED.labels("merge").inc(merged)
        if deliveries:
            self._on_deliveries()
        if outbox:
            self._on_outbox()
        if new_alerts or merged:
            log.info(
                "alerts_raised", count=len(new_alerts), deliveries=len(deliveries), merged=merged
            )
        return BatchOutcome(len(stored), len(new_alerts), len(deliveries), merged)

    async def _merge(
        self,
        session: AsyncSession,
        planned: list[_Planned],
        now: datetime,
        window: timedelta,
    ) -> tuple[list[_Planned], list[dict[str, Any]]]:
        """Items of a customer with an open alert (seen within ``window``) join that alert.

        Returns the alerts still to raise and the audit entries of the joins. Advisory locks
        on the identities serialise concurrent batches (several replicas) for one customer.
        """
        keys = {alert.id: identities(alert.item.feedback.customer) for alert in planned}
        every = sorted({key for found in keys.values() for key in found})
        if not every:
            return planned, []
        await repository.lock_identities(session, every)
        handled = await repository.feedback_with_alert(session, [a.feedback_id for a in planned])
        open_by_identity = await repository.open_alerts_by_identity(session, every, now - window)
        remaining: list[_Planned] = []
        events: list[dict[str, Any]] = []
        for alert in planned:
            if alert.feedback_id in handled:
                remaining.append(alert)  # a redelivery: the insert will skip it
                continue
            target = next(
                (open_by_identity[key] for key in keys[alert.id] if key in open_by_identity), None
            )
            if target is None:
                remaining.append(alert)
                for key in keys[alert.id]:
                    # Later items of this batch join the alert this one raises.
                    open_by_identity[key] = alert.id
                continue
            joined = await repository.join_alert(
                session,
                alert_id=target,
                feedback_id=alert.feedback_id,
                reason="merge",
                priority=alert.decision.priority.value,
                identities=keys[alert.id],
                now=now,
            )
            if joined is None:
                continue
            events.append(
                audit_row(
                    target,
                    "item_joined",
                    from_status=None,
                    to_status=joined,
                    actor=None,
                    note=f"{alert.item.feedback.channel.value} item from the same customer",
                    now=now,
                    details={
                        "feedback_id": str(alert.feedback_id),
                        "channel": alert.item.feedback.channel.value,
                        "reason": "merge",
                    },
                )
            )
        return remaining, events


# --- State changes from the support API ---------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    verb: str
    event_type: str
    allowed_from: frozenset[AlertStatus]
    to_status: AlertStatus


ACKNOWLEDGE = Transition(
    "acknowledge", "acknowledged", frozenset({AlertStatus.OPEN}), AlertStatus.ACKNOWLEDGED
)
RESOLVE = Transition(
    "resolve",
    "resolved",
    frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED}),
    AlertStatus.RESOLVED,
)
REOPEN = Transition("reopen", "reopened", frozenset({AlertStatus.RESOLVED}), AlertStatus.OPEN)
UNRESOLVED = frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED})


@dataclass(frozen=True)
class Changed:
    alert: Alert
    channel: str


@dataclass(frozen=True)
class NotFound:
    pass


@dataclass(frozen=True)
class Hidden:
    """The alert exists but is not the caller's team's (answered like an unknown id)."""


@dataclass(frozen=True)
class Conflict:
    status: AlertStatus
    verb: str = field(default="", compare=False)
    allowed: frozenset[AlertStatus] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class Invalid:
    """The request names something that does not exist (an owner, a root cause)."""

    code: str
    detail: str


Result = Changed | NotFound | Hidden | Conflict | Invalid


@dataclass
class Effects:
    """What one change writes besides the alert row."""

    audit: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]

    def record(
        self,
        alert: Alert,
        kind: str,
        event_type: str | None,
        *,
        from_status: str,
        actor: str | None,
        note: str | None,
        now: datetime,
        details: dict[str, Any] | None = None,
        event_note: str | None = None,
    ) -> None:
        """One change of ``alert``: its audit entry and the lifecycle event announcing it."""
        self.audit.append(
            audit_row(
                alert.id,
                kind,
                from_status=from_status,
                to_status=alert.status,
                actor=actor,
                note=note,
                now=now,
                details=details,
            )
        )
        # ``event_note`` stands in on the event when the change carries no note of its own.
        announced = note if event_note is None else (note or event_note)
        self.outbox.append(alert_event_row(alert, event_type, actor=actor, note=announced, now=now))


Action = Callable[[AsyncSession, Alert, datetime, Effects], Awaitable[Conflict | Invalid | None]]


@dataclass(frozen=True)
class Lifecycle:
    """The support API's state changes; one transaction each, the alert row locked."""

    sessionmaker: async_sessionmaker[AsyncSession]
    routing: RoutingState
    clock: Clock = system_clock
    on_outbox: Callable[[], None] = lambda: None
    on_deliveries: Callable[[], None] = lambda: None
    first_delay_s: float = 0.0

    async def _apply(
        self, alert_id: uuid.UUID, action: Action, log_as: str, team: str | None
    ) -> Result:
        """Lock the alert, check the caller's team may act on it, act, record the effects.

        The team check reads the locked row in the action's own transaction: a separate
        read before it would let the alert be handed to another team in between (the
        change is then refused, as if the alert did not exist)."""
        effects = Effects([], [], [])
        async with self.sessionmaker() as session, session.begin():
            # Locked, so two concurrent changes of one alert serialise.
            alert = await repository.lock_alert(session, alert_id)
            if alert is None:
                return NotFound()
            if not sees(team, alert.owner_id, alert.escalated_to):
                return Hidden()
            now = self.clock()
            refused = await action(session, alert, now, effects)
            if refused is not None:
                return refused
            alert.updated_at = now
            await session.flush()
            await repository.insert_rows(session, AlertEvent, effects.audit)
            await repository.insert_rows(session, Outbox, effects.outbox)
            await repository.insert_deliveries(session, effects.deliveries)
            channel = await session.scalar(
                select(Feedback.channel).where(Feedback.id == alert.feedback_id)
            )
        if effects.outbox:
            self.on_outbox()
        if effects.deliveries:
            self.on_deliveries()
        log.info("alert_changed", alert_id=str(alert.id), change=log_as, status=alert.status)
        return Changed(alert, channel or "")

    def _first_delay(self) -> timedelta:
        return timedelta(seconds=self.first_delay_s)

    async def transition(
        self,
        alert_id: uuid.UUID,
        transition: Transition,
        *,
        actor: str | None,
        note: str | None = None,
        team: str | None = None,
    ) -> Result:
        """``team`` (here and in the other changes): act only on an alert that team owns or
        that was escalated to it (None: any alert); otherwise :class:`Hidden`."""

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Conflict | None:
            current = AlertStatus(alert.status)
            if current not in transition.allowed_from:
                return Conflict(current, transition.verb, transition.allowed_from)
            _set_status(alert, transition.to_status, actor, note, now)
            effects.record(
                alert,
                transition.event_type,
                None,
                from_status=current.value,
                actor=actor,
                note=note,
                now=now,
            )
            return None

        return await self._apply(alert_id, act, transition.verb, team)

    async def resolve(
        self,
        alert_id: uuid.UUID,
        *,
        actor: str | None,
        note: str,
        root_cause: str | None = None,
        customer_reply: str | None = None,
        team: str | None = None,
    ) -> Result:
        allowed = self.routing.router.config.root_causes
        if root_cause is not None and allowed is not None and root_cause not in allowed:
            return Invalid(
                "unknown_root_cause",
                f"Root cause {root_cause!r} is not one of: {', '.join(allowed)}.",
            )

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Conflict | None:
            current = AlertStatus(alert.status)
            if current not in RESOLVE.allowed_from:
                return Conflict(current, RESOLVE.verb, RESOLVE.allowed_from)
            _set_status(alert, AlertStatus.RESOLVED, actor, note, now)
            alert.root_cause = root_cause
            details: dict[str, Any] = {}
            if root_cause is not None:
                details["root_cause"] = root_cause
            if customer_reply is not None:
                feedback = await session.get(Feedback, alert.feedback_id)
                assert feedback is not None  # a foreign key holds it
                repository.reveal(session, feedback)
                reply = CustomerReplyRequest(
                    reply_id=uuid.uuid4(),
                    alert_id=alert.id,
                    feedback_id=feedback.id,
                    channel=feedback.channel,
                    external_id=feedback.external_id,
                    contact={k: str(v) for k, v in feedback.customer.items() if k != "tier"},
                    subject=f"Re: {feedback.subject}" if feedback.subject else None,
                    text=customer_reply,
                    language=feedback.language,
                    actor=actor,
                    requested_at=now,
                )
                alert.customer_reply = customer_reply
                alert.customer_reply_status = "pending"
                alert.customer_reply_at = now
                alert.customer_reply_detail = None
                details["customer_reply"] = {
                    "reply_id": str(reply.reply_id),
                    "channel": reply.channel,
                }
                effects.outbox.append(customer_reply_row(reply))
            effects.audit.append(
                audit_row(
                    alert.id,
                    "resolved",
                    from_status=current.value,
                    to_status=alert.status,
                    actor=actor,
                    note=note,
                    now=now,
                    details=details or None,
                )
            )
            effects.outbox.insert(0, alert_event_row(alert, None, actor=actor, note=note, now=now))
            return None

        return await self._apply(alert_id, act, "resolve", team)

    async def reopen(
        self, alert_id: uuid.UUID, *, actor: str | None, note: str, team: str | None = None
    ) -> Result:
        router = self.routing.router

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Conflict | None:
            current = AlertStatus(alert.status)
            if current not in REOPEN.allowed_from:
                return Conflict(current, REOPEN.verb, REOPEN.allowed_from)
            _set_status(alert, AlertStatus.OPEN, actor, note, now)
            alert.reopened_count += 1
            # A reopened alert starts fresh SLA clocks.
            sla = router.config.sla.of(AlertPriority(alert.priority))
            alert.ack_due_at, alert.resolve_due_at = deadlines(
                now, sla, router.owner(alert.owner_id)
            )
            alert.ack_breached_at = alert.resolve_breached_at = None
            effects.record(
                alert,
                "reopened",
                ALERT_REOPENED,
                from_status=current.value,
                actor=actor,
                note=note,
                now=now,
            )
            return None

        return await self._apply(alert_id, act, "reopen", team)

    async def comment(
        self, alert_id: uuid.UUID, *, actor: str | None, text: str, team: str | None = None
    ) -> Result:
        async def act(session: AsyncSession, alert: Alert, now: datetime, effects: Effects) -> None:
            effects.record(
                alert,
                "commented",
                ALERT_COMMENTED,
                from_status=alert.status,
                actor=actor,
                note=text,
                now=now,
            )
            return None

        return await self._apply(alert_id, act, "comment", team)

    async def assign(
        self,
        alert_id: uuid.UUID,
        *,
        actor: str | None,
        assignee: str | None,
        owner_id: str | None,
        note: str | None,
        team: str | None = None,
    ) -> Result:
        router = self.routing.router
        new_owner = router.owner(owner_id) if owner_id is not None else None
        if owner_id is not None and new_owner is None:
            return Invalid("unknown_owner", f"No owner with id {owner_id!r}.")

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Conflict | None:
            current = AlertStatus(alert.status)
            if current not in UNRESOLVED:
                return Conflict(current, "assign", UNRESOLVED)
            details: dict[str, Any] = {}
            if assignee is not None and assignee != alert.assignee:
                details["assignee"] = {"from": alert.assignee, "to": assignee}
                alert.assignee = assignee
            if new_owner is not None and new_owner.id != alert.owner_id:
                details["owner"] = {"from": alert.owner_id, "to": new_owner.id}
                alert.owner_id = new_owner.id
                # The new owner hears about it like about a new alert.
                effects.deliveries.extend(
                    delivery_rows(alert.id, new_owner, "alert.assigned", now, self._first_delay())
                )
            summary = ", ".join(f"{key} → {value['to']}" for key, value in details.items())
            effects.record(
                alert,
                "assigned",
                ALERT_ASSIGNED,
                from_status=current.value,
                actor=actor,
                note=note,
                now=now,
                details=details,
                event_note=summary or None,
            )
            return None

        return await self._apply(alert_id, act, "assign", team)

    async def escalate(
        self,
        alert_id: uuid.UUID,
        *,
        actor: str | None,
        note: str | None,
        to_owner: str | None,
        team: str | None = None,
    ) -> Result:
        router = self.routing.router
        target = router.owner(to_owner) if to_owner is not None else None
        if to_owner is not None and target is None:
            return Invalid("unknown_owner", f"No owner with id {to_owner!r}.")

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Conflict | Invalid | None:
            current = AlertStatus(alert.status)
            if current not in UNRESOLVED:
                return Conflict(current, "escalate", UNRESOLVED)
            chosen = target or _next_escalation(router, alert)
            if chosen is None:
                return Invalid(
                    "no_escalation_owner",
                    f"Owner {alert.escalated_to or alert.owner_id!r} has no escalation owner; "
                    "name one with to_owner.",
                )
            _escalate(alert, chosen, router, now, actor, note, effects, self._first_delay(), None)
            return None

        result = await self._apply(alert_id, act, "escalate", team)
        if isinstance(result, Changed):
            ESCALATIONS.labels("manual").inc()
        return result

    async def record_customer_reply(
        self,
        alert_id: uuid.UUID,
        *,
        actor: str | None,
        status: str,
        detail: str | None,
        team: str | None = None,
    ) -> Result:
        """A channel system reports whether it delivered the reply (sent / failed)."""

        async def act(
            session: AsyncSession, alert: Alert, now: datetime, effects: Effects
        ) -> Invalid | None:
            if alert.customer_reply_status is None:
                return Invalid("no_customer_reply", "This alert has no customer reply.")
            alert.customer_reply_status = status
            alert.customer_reply_detail = detail
            effects.audit.append(
                audit_row(
                    alert.id,
                    f"customer_reply_{status}",
                    from_status=alert.status,
                    to_status=alert.status,
                    actor=actor,
                    note=detail,
                    now=now,
                )
            )
            return None

        return await self._apply(alert_id, act, "customer_reply", team)


async def change_status(
    sessionmaker: async_sessionmaker[AsyncSession],
    alert_id: uuid.UUID,
    transition: Transition,
    *,
    actor: str | None,
    note: str | None = None,
    on_outbox: Callable[[], None] = lambda: None,
    clock: Clock = system_clock,
) -> Result:
    """One plain transition (acknowledge, resolve with a note, reopen) without routing."""
    lifecycle = Lifecycle(
        sessionmaker, RoutingState(Router(default_routing())), clock=clock, on_outbox=on_outbox
    )
    return await lifecycle.transition(alert_id, transition, actor=actor, note=note)


def _set_status(
    alert: Alert, status: AlertStatus, actor: str | None, note: str | None, now: datetime
) -> None:
    alert.status = status.value
    # Observed before the transaction commits: a rolled-back transition (rare: the database
    # failing mid-request) is counted once too often, never missed.
    if status is AlertStatus.ACKNOWLEDGED:
        alert.acknowledged_at, alert.acknowledged_by = now, actor
        TIME_TO_ACKNOWLEDGE.labels(alert.priority).observe(_seconds_since(alert.created_at, now))
    elif status is AlertStatus.RESOLVED:
        alert.resolved_at, alert.resolved_by, alert.resolution_note = now, actor, note
        TIME_TO_RESOLVE.labels(alert.priority).observe(_seconds_since(alert.created_at, now))
    elif status is AlertStatus.OPEN:
        alert.acknowledged_at = alert.acknowledged_by = None
        alert.resolved_at = alert.resolved_by = alert.resolution_note = None


def _seconds_since(start: datetime, now: datetime) -> float:
    return max((now - start).total_seconds(), 0.0)


def _next_escalation(router: Router, alert: Alert) -> Owner | None:
    """The escalation owner of whoever has the alert now (escalations climb the chain)."""
    current = alert.escalated_to or alert.owner_id
    chosen = router.escalation_owner(current)
    if chosen is None and alert.escalated_to is None:
        return None
    return chosen


def _escalate(
    alert: Alert,
    chosen: Owner | None,
    router: Router,
    now: datetime,
    actor: str | None,
    note: str | None,
    effects: Effects,
    first_delay: timedelta,
    breach: list[str] | None,
) -> None:
    previous = alert.escalated_to
    alert.escalation_level += 1
    alert.escalated_at = now
    if chosen is not None:
        alert.escalated_to = chosen.id
        effects.deliveries.extend(
            delivery_rows(alert.id, chosen, "alert.escalated", now, first_delay)
        )
    details: dict[str, Any] = {
        "level": alert.escalation_level,
        "from_owner": previous or alert.owner_id,
        "to_owner": chosen.id if chosen else None,
    }
    if breach:
        details["breach"] = breach
    effects.record(
        alert,
        "escalated",
        ALERT_ESCALATED,
        from_status=alert.status,
        actor=actor,
        note=note,
        now=now,
        details=details,
    )


async def escalate_locked(
    session: AsyncSession,
    alert: Alert,
    router: Router,
    now: datetime,
    *,
    actor: str | None,
    note: str,
    breach: list[str] | None = None,
    reason: str = "sla",
) -> int:
    """Escalate an alert the caller holds locked (SLA monitor, failing targets); returns the
    number of deliveries queued. Without an escalation owner the breach is still recorded."""
    effects = Effects([], [], [])
    _escalate(
        alert,
        _next_escalation(router, alert),
        router,
        now,
        actor,
        note,
        effects,
        timedelta(),
        breach,
    )
    alert.updated_at = now
    await session.flush()
    await repository.insert_rows(session, AlertEvent, effects.audit)
    await repository.insert_rows(session, Outbox, effects.outbox)
    await repository.insert_deliveries(session, effects.deliveries)
    ESCALATIONS.labels(reason).inc()
    return len(effects.deliveries)
