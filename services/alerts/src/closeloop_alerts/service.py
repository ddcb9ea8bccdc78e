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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.metrics import ALERTS_RAISED, FEEDBACK_STORED
from closeloop_alerts.models import Alert, AlertEvent, Feedback, Outbox
from closeloop_alerts.outbox import lifecycle_row
from closeloop_alerts.routing import RouteDecision, RoutingState
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.sentiment import ScoredFeedback
from closeloop_shared.events import FeedbackScoredEvent, utcnow
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
    row = {
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


@dataclass(frozen=True)
class BatchOutcome:
    feedback_stored: int
    alerts_raised: int
    deliveries_queued: int


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
        }

    def raised_event(self, now: datetime) -> dict[str, Any]:
        rule = self.decision.rule_id
        return {
            "alert_id": self.id,
            "type": "raised",
            "from_status": None,
            "to_status": AlertStatus.OPEN.value,
            "actor": None,
            "note": f"rule {rule}" if rule else "no rule matched: default owner",
            "occurred_at": now,
        }

    def deliveries(self, now: datetime, first_delay: timedelta) -> list[dict[str, Any]]:
        owner = self.decision.owner
        return [
            {
                "id": uuid.uuid4(),
                "alert_id": self.id,
                "owner_id": owner.id,
                "target_key": target_key,
                "target_type": target.type,
                "url": str(target.url),
                "webhook_id": webhook_id(self.id, owner.id, target_key),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now + first_delay,
                "created_at": now,
                "updated_at": now,
            }
            for target_key, target in owner.targets()
        ]

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
    ) -> None:
        self._first_delay = timedelta(seconds=first_delay_s)
        self._sessionmaker = sessionmaker
        self._routing = routing
        self._on_deliveries = on_deliveries
        self._on_outbox = on_outbox

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

        now = utcnow()
        planned = [
            _Planned(uuid.uuid4(), latest[feedback_id], decision)
            for feedback_id, decision in decisions.items()
        ]
        async with self._sessionmaker() as session, session.begin():
            stored = await repository.insert_feedback(
                session, [feedback_row(latest[i]) for i in feedback_ids]
            )
            score_ids = await repository.upsert_scores(
                session, [score_row(scores[key]) for key in sorted(scores)]
            )
            raised = set(
                await repository.insert_alerts(
                    session, [alert.row(score_ids, now) for alert in planned]
                )
            )
            new_alerts = [alert for alert in planned if alert.id in raised]
            events: list[dict[str, Any]] = []
            deliveries: list[dict[str, Any]] = []
            outbox: list[dict[str, Any]] = []
            for alert in new_alerts:
                events.append(alert.raised_event(now))
                deliveries.extend(alert.deliveries(now, self._first_delay))
                outbox.append(alert.lifecycle(now))
            await repository.insert_rows(session, AlertEvent, events)
            await repository.insert_deliveries(session, deliveries)
            await repository.insert_rows(session, Outbox, outbox)

        # Counted after the commit: a rolled-back batch is retried and must not count twice.
        for feedback_id in stored:
            FEEDBACK_STORED.labels(latest[feedback_id].feedback.channel.value).inc()
        for alert in new_alerts:
            ALERTS_RAISED.labels(
                alert.decision.priority.value, alert.item.feedback.channel.value
            ).inc()
        if deliveries:
            self._on_deliveries()
        if outbox:
            self._on_outbox()
        if new_alerts:
            log.info("alerts_raised", count=len(new_alerts), deliveries=len(deliveries))
        return BatchOutcome(len(stored), len(new_alerts), len(deliveries))


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


@dataclass(frozen=True)
class Changed:
    alert: Alert
    channel: str


@dataclass(frozen=True)
class NotFound:
    pass


@dataclass(frozen=True)
class Conflict:
    status: AlertStatus


async def change_status(
    sessionmaker: async_sessionmaker[AsyncSession],
    alert_id: uuid.UUID,
    transition: Transition,
    *,
    actor: str | None,
    note: str | None = None,
    on_outbox: Callable[[], None] = lambda: None,
) -> Changed | NotFound | Conflict:
    """Apply one transition with its audit entry and lifecycle event, in one transaction."""
    async with sessionmaker() as session, session.begin():
        # Locked, so two concurrent acknowledgements cannot both succeed.
        alert = await repository.lock_alert(session, alert_id)
        if alert is None:
            return NotFound()
        current = AlertStatus(alert.status)
        if current not in transition.allowed_from:
            return Conflict(current)
        now = utcnow()
        alert.status = transition.to_status.value
        alert.updated_at = now
        if transition.to_status is AlertStatus.ACKNOWLEDGED:
            alert.acknowledged_at, alert.acknowledged_by = now, actor
        elif transition.to_status is AlertStatus.RESOLVED:
            alert.resolved_at, alert.resolved_by, alert.resolution_note = now, actor, note
        await session.flush()
        await repository.insert_rows(
            session,
            AlertEvent,
            [
                {
                    "alert_id": alert.id,
                    "type": transition.event_type,
                    "from_status": current.value,
                    "to_status": transition.to_status.value,
                    "actor": actor,
                    "note": note,
                    "occurred_at": now,
                }
            ],
        )
        await repository.insert_rows(
            session,
            Outbox,
            [
                lifecycle_row(
                    alert_id=alert.id,
                    feedback_id=alert.feedback_id,
                    status=transition.to_status,
                    priority=AlertPriority(alert.priority),
                    owner_id=alert.owner_id,
                    rule_id=alert.rule_id,
                    actor=actor,
                    note=note,
                    occurred_at=now,
                )
            ],
        )
        channel = await session.scalar(
            select(Feedback.channel).where(Feedback.id == alert.feedback_id)
        )
    on_outbox()
    log.info(
        "alert_status_changed",
        alert_id=str(alert.id),
        from_status=current.value,
        to_status=transition.to_status.value,
        actor=actor,
    )
    return Changed(alert, channel or "")
