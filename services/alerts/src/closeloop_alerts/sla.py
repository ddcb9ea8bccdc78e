"""SLA clocks: deadlines in the owner's working time, and the monitor that escalates breaches.

Deadlines are absolute timestamps stored on the alert when it is raised (or reopened), so
the clock keeps running across restarts and every replica reads the same one. The monitor
claims breached alerts with ``SELECT ... FOR UPDATE SKIP LOCKED`` and marks the breach in
the same transaction (``ack_breached_at`` / ``resolve_breached_at``); PostgreSQL rechecks
the ``... IS NULL`` condition on the locked row, so an alert escalates once however many
replicas scan at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.metrics import SLA_BREACHES
from closeloop_alerts.models import Alert
from closeloop_alerts.routing import Owner, RoutingState, SlaTarget, WorkingHours
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

# Enough to cross any holiday-free calendar: working days exist at least weekly.
_MAX_DAYS = 800


def add_working_time(
    start: datetime, seconds: float, hours: WorkingHours | None, timezone: str | None
) -> datetime:
    """``start`` plus ``seconds`` of the owner's working time (wall time if it has no hours)."""
    if hours is None:
        return start + timedelta(seconds=seconds)
    zone = ZoneInfo(timezone or "UTC")
    weekdays = hours.weekdays()
    remaining = seconds
    cursor = start.astimezone(zone)
    for _ in range(_MAX_DAYS):
        day = cursor.date()
        if day.weekday() in weekdays:
            opens = datetime.combine(day, hours.start, tzinfo=zone)
            closes = datetime.combine(day, hours.end, tzinfo=zone)
            # Arithmetic in UTC: aware datetimes of one zone subtract as wall time.
            begin = max(cursor, opens).astimezone(UTC)
            end = closes.astimezone(UTC)
            if begin < end:
                available = (end - begin).total_seconds()
                if remaining <= available:
                    return begin + timedelta(seconds=remaining)
                remaining -= available
        cursor = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    raise ValueError("working hours never open")


def deadlines(
    now: datetime, sla: SlaTarget, owner: Owner | None
) -> tuple[datetime | None, datetime | None]:
    """(acknowledge by, resolve by) for an alert raised at ``now`` for ``owner``."""
    hours = owner.working_hours if owner else None
    zone = owner.timezone if owner else None
    ack = add_working_time(now, sla.acknowledge, hours, zone) if sla.acknowledge else None
    resolve = add_working_time(now, sla.resolve, hours, zone) if sla.resolve else None
    return ack, resolve


class SlaMonitor:
    """Background task: finds breached SLA clocks and escalates each alert once."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        routing: RoutingState,
        *,
        clock: Clock = system_clock,
        poll_interval_s: float = 5.0,
        batch_size: int = 100,
        on_deliveries: Callable[[], None] = lambda: None,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._routing = routing
        self._clock = clock
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._on_deliveries = on_deliveries
        self._on_outbox = on_outbox

    async def run(self) -> None:
        while True:
            try:
                while await self.check_once() >= self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("sla_check_failed", error=type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(self._poll_interval_s)

    async def check_once(self) -> int:
        """Escalate the alerts whose clock ran out; returns how many breaches were handled."""
        # Imported here: service imports this module for the deadlines.
        from closeloop_alerts.service import escalate_locked

        now = self._clock()
        router = self._routing.router
        breaches: list[tuple[str, str]] = []
        async with self._sessionmaker() as session, session.begin():
            ack_due = and_(
                Alert.status == "open", Alert.ack_breached_at.is_(None), Alert.ack_due_at <= now
            )
            resolve_due = and_(
                Alert.status != "resolved",
                Alert.resolve_breached_at.is_(None),
                Alert.resolve_due_at <= now,
            )
            alerts = (
                await session.scalars(
                    select(Alert)
                    .where(or_(ack_due, resolve_due))
                    .order_by(Alert.created_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            deliveries = outbox = False
            for alert in alerts:
                kinds = []
                if (
                    alert.status == "open"
                    and alert.ack_breached_at is None
                    and alert.ack_due_at is not None
                    and alert.ack_due_at <= now
                ):
                    alert.ack_breached_at = now
                    kinds.append("acknowledge")
                if (
                    alert.resolve_breached_at is None
                    and alert.resolve_due_at is not None
                    and alert.resolve_due_at <= now
                ):
                    alert.resolve_breached_at = now
                    kinds.append("resolve")
                if not kinds:
                    continue
                reason = " and ".join(f"{kind} SLA breached" for kind in kinds)
                queued = await escalate_locked(
                    session, alert, router, now, actor=None, note=reason, breach=kinds
                )
                deliveries = deliveries or queued > 0
                outbox = True
                breaches.extend((kind, alert.priority) for kind in kinds)
        for kind, priority in breaches:
            SLA_BREACHES.labels(kind, priority).inc()
        if deliveries:
            self._on_deliveries()
        if outbox:
            self._on_outbox()
        if breaches:
            log.warning("sla_breached", count=len(breaches))
        return len(alerts)
