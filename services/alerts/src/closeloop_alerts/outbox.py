"""Transactional outbox: lifecycle events are rows first, Kafka messages after the commit.

An alert's state change and the event announcing it are written in one database
transaction, so neither exists without the other. The relay then publishes unpublished
rows in id order and marks them published only after the broker acknowledged them; a
crash in between publishes them again (at least once, same CloudEvent id, consumers
dedupe on it). A PostgreSQL advisory lock lets one replica relay at a time, which keeps
the events of one alert in the order they were written.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.models import Alert, Outbox
from closeloop_shared.contracts.alerts import (
    AlertLifecycle,
    AlertPriority,
    AlertStatus,
    CustomerReplyRequest,
)
from closeloop_shared.events import (
    CloudEvent,
    CustomerReplyRequestedEvent,
    EventType,
    Topic,
    encode,
    new_event_id,
    utcnow,
)
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

EVENT_SOURCE = "/closeloop/alerts"

# Arbitrary but fixed: the advisory lock every relay replica competes for.
RELAY_LOCK_KEY = 0x636C_616C_7274_0001

EVENT_TYPES = {
    AlertStatus.OPEN: EventType.ALERT_RAISED,
    AlertStatus.ACKNOWLEDGED: EventType.ALERT_ACKNOWLEDGED,
    AlertStatus.RESOLVED: EventType.ALERT_RESOLVED,
}

# Lifecycle events beyond the three states; the payload is the shared AlertLifecycle
# (status after the change + note).
ALERT_REOPENED = EventType.ALERT_REOPENED
ALERT_ESCALATED = EventType.ALERT_ESCALATED
ALERT_ASSIGNED = EventType.ALERT_ASSIGNED
ALERT_COMMENTED = EventType.ALERT_COMMENTED

CUSTOMER_REPLY_TOPIC = Topic.CUSTOMER_REPLY_REQUESTED.value
CUSTOMER_REPLY_REQUESTED = EventType.CUSTOMER_REPLY_REQUESTED


def customer_reply_row(reply: CustomerReplyRequest) -> dict[str, Any]:
    event = CustomerReplyRequestedEvent(
        id=str(reply.reply_id),
        source=EVENT_SOURCE,
        subject=str(reply.alert_id),
        time=reply.requested_at,
        data=reply,
    )
    return {
        "topic": CUSTOMER_REPLY_TOPIC,
        "event_type": CUSTOMER_REPLY_REQUESTED,
        "key": str(reply.feedback_id).encode(),
        "payload": encode(event),
        "created_at": reply.requested_at,
    }


def lifecycle_row(
    *,
    event_type: str | None = None,
    alert_id: uuid.UUID,
    feedback_id: uuid.UUID,
    status: AlertStatus,
    priority: AlertPriority,
    owner_id: str,
    rule_id: str | None,
    actor: str | None,
    note: str | None,
    occurred_at: datetime,
) -> dict[str, Any]:
    """The outbox row of one lifecycle event, keyed by feedback id like every other event."""
    event = CloudEvent[AlertLifecycle](
        id=new_event_id(),
        source=EVENT_SOURCE,
        type=event_type or EVENT_TYPES[status],
        subject=str(alert_id),
        time=occurred_at,
        data=AlertLifecycle(
            alert_id=alert_id,
            feedback_id=feedback_id,
            status=status,
            priority=priority,
            owner_id=owner_id,
            rule_id=rule_id,
            actor=actor,
            note=note,
            occurred_at=occurred_at,
        ),
    )
    return {
        "topic": Topic.ALERT_LIFECYCLE.value,
        "event_type": event.type,
        "key": str(feedback_id).encode(),
        "payload": encode(event),
        "created_at": occurred_at,
    }


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: EventProducer,
        *,
        batch_size: int,
        poll_interval_s: float,
        retention_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = timedelta(seconds=retention_s)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows were committed: publish now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        delay = self._poll_interval_s
        loop = asyncio.get_running_loop()
        next_cleanup = loop.time()
        while True:
            self._wake.clear()
            try:
                published = await self.publish_once()
                if loop.time() >= next_cleanup:
                    await self._cleanup()
                    next_cleanup = loop.time() + 3600
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Broker or database away: the rows stay unpublished; try again later.
                log.warning("outbox_relay_failed", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = self._poll_interval_s
            if published >= self._batch_size:
                continue  # more are probably waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def publish_once(self) -> int:
        """Publish one batch of unpublished events; returns how many were published."""
        async with self._sessionmaker() as session, session.begin():
            locked = await session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY)))
            if not locked:
                return 0  # another replica is relaying
            rows = (
                await session.execute(
                    select(Outbox.id, Outbox.topic, Outbox.key, Outbox.payload, Outbox.event_type)
                    .where(Outbox.published_at.is_(None))
                    .order_by(Outbox.id)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            await self._producer.send_many(
                [OutgoingMessage(row.topic, row.payload, key=row.key) for row in rows]
            )
            now = utcnow()
            await session.execute(
                update(Outbox)
                .where(Outbox.id.in_([row.id for row in rows]))
                .values(published_at=now)
            )
            replies = [
                uuid.UUID(orjson.loads(row.payload)["subject"])
                for row in rows
                if row.event_type == CUSTOMER_REPLY_REQUESTED
            ]
            if replies:
                # The reply left for the channel systems; "sent" is theirs to report.
                await session.execute(
                    update(Alert)
                    .where(Alert.id.in_(replies), Alert.customer_reply_status == "pending")
                    .values(customer_reply_status="published")
                )
        log.info("outbox_published", count=len(rows))
        return len(rows)

    async def _cleanup(self) -> None:
        async with self._sessionmaker() as session, session.begin():
            removed = await repository.delete_published_outbox(session, utcnow() - self._retention)
        if removed:
            log.info("outbox_cleaned", count=removed)
