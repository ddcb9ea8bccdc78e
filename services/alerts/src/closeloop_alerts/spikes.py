"""Spike detection: one incident alert when the negative rate of a topic, touchpoint or
channel jumps well above its recent baseline.

Every ``spike_interval_s`` the detector counts items and negatives per value of each
dimension in the current window (``spikes.window``, default 1 h) and in each of the
``baseline_windows`` windows before it. With the current negative rate ``r``, and the
mean ``μ`` and standard deviation ``σ`` of the baseline windows' rates (windows without
items count as rate 0), the value spikes when

    negatives >= min_negatives  and  z = (r − μ) / max(σ, 0.05) >= z_threshold.

The floor on σ keeps a flat baseline (σ = 0) from turning one extra complaint into an
infinite z. A spike raises one ``kind = 'spike'`` alert with ``incident_key``
``<dimension>:<value>`` for the owner the rules give that value (the first rule, in
evaluation order, that names it; otherwise the default owner), pointing at the newest
negative item of the window. While that incident is unresolved, the value raises no
second one, on this replica or any other (an advisory lock per key).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.metrics import SPIKES
from closeloop_alerts.models import Alert, AlertEvent, Feedback, Outbox, SentimentScore
from closeloop_alerts.rescores import live_first
from closeloop_alerts.routing import Owner, Router, RoutingState, SpikePolicy
from closeloop_alerts.sla import deadlines
from closeloop_shared.contracts.alerts import AlertStatus
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

SIGMA_FLOOR = 0.05


@dataclass(frozen=True)
class Observation:
    """One scored item: when it arrived, its dimensions and whether it was negative."""

    at: datetime
    feedback_id: uuid.UUID
    score_id: int
    negative: bool
    values: dict[str, tuple[str, ...]]  # dimension -> values (several topics)


@dataclass(frozen=True)
class Spike:
    dimension: str
    value: str
    negatives: int
    total: int
    rate: float
    baseline: float
    z: float
    trigger: Observation


def detect(observations: Iterable[Observation], policy: SpikePolicy, now: datetime) -> list[Spike]:
    """Pure: the values whose current negative rate is a spike against their baseline."""
    window = timedelta(seconds=policy.window)
    windows = policy.baseline_windows
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (windows + 1))
    negatives: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (windows + 1))
    newest: dict[tuple[str, str], Observation] = {}
    for item in observations:
        age = now - item.at
        if age < timedelta(0):
            continue
        bucket = int(age / window)
        if bucket > windows:
            continue
        for dimension in policy.dimensions:
            for value in item.values.get(dimension, ()):
                key: tuple[str, str] = (dimension, value)
                totals[key][bucket] += 1
                if item.negative:
                    negatives[key][bucket] += 1
                    if bucket == 0 and (key not in newest or item.at > newest[key].at):
                        newest[key] = item
    spikes = []
    for counted, counts in totals.items():
        key = counted
        current_total, current_negative = counts[0], negatives[key][0]
        if current_negative < policy.min_negatives or current_total == 0:
            continue
        rate = current_negative / current_total
        rates = [negatives[key][i] / counts[i] if counts[i] else 0.0 for i in range(1, windows + 1)]
        mean = sum(rates) / len(rates)
        sigma = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))
        z = (rate - mean) / max(sigma, SIGMA_FLOOR)
        if z >= policy.z_threshold:
            spikes.append(
                Spike(key[0], key[1], current_negative, current_total, rate, mean, z, newest[key])
            )
    return sorted(spikes, key=lambda spike: (spike.dimension, spike.value))


def owner_for(router: Router, dimension: str, value: str) -> tuple[Owner, str | None]:
    """The owner the rules give this touchpoint, topic or channel, else the default."""
    condition = {"touchpoint": "touchpoint", "topic": "topics", "channel": "channel"}[dimension]
    for rule in router.ordered_rules:
        named = getattr(rule.when, condition)
        if named is not None and value in [str(getattr(v, "value", v)) for v in named]:
            owner = router.owner(rule.owner)
            if owner is not None:
                return owner, rule.id
    owner = router.owner(router.config.default_owner)
    assert owner is not None
    return owner, None


class SpikeDetector:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        routing: RoutingState,
        *,
        clock: Clock = system_clock,
        interval_s: float = 60.0,
        on_deliveries: Callable[[], None] = lambda: None,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._routing = routing
        self._clock = clock
        self._interval_s = interval_s
        self._on_deliveries = on_deliveries
        self._on_outbox = on_outbox

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(self._interval_s)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("spike_check_failed", error=type(error).__name__)

    async def _observations(self, session: AsyncSession, since: datetime) -> list[Observation]:
        latest = (
            select(
                SentimentScore.id,
                SentimentScore.feedback_id,
                SentimentScore.label,
                SentimentScore.topics,
            )
            .ext(distinct_on(SentimentScore.feedback_id))
            # The live score: a re-score by another model version never raises a spike.
            .order_by(SentimentScore.feedback_id, *live_first())
            .subquery()
        )
        rows = await session.execute(
            select(
                Feedback.id,
                Feedback.received_at,
                Feedback.channel,
                Feedback.touchpoint,
                latest.c.id,
                latest.c.label,
                latest.c.topics,
            )
            .join(latest, latest.c.feedback_id == Feedback.id)
            .where(Feedback.received_at >= since)
        )
        return [
            Observation(
                at=received_at,
                feedback_id=feedback_id,
                score_id=score_id,
                negative=label == "negative",
                values={
                    "channel": (channel,),
                    "touchpoint": (touchpoint,) if touchpoint else (),
                    "topic": tuple(str(t).casefold() for t in topics or ()),
                },
            )
            for feedback_id, received_at, channel, touchpoint, score_id, label, topics in rows
        ]

    async def check_once(self) -> list[uuid.UUID]:
        """Raise incident alerts for new spikes; returns their ids."""
        router = self._routing.router
        policy = router.config.spikes
        if policy is None or not policy.enabled:
            return []
        now = self._clock()
        since = now - timedelta(seconds=policy.window * (policy.baseline_windows + 1))
        async with self._sessionmaker() as session:
            observations = await self._observations(session, since)
        raised: list[tuple[uuid.UUID, str]] = []
        for spike in detect(observations, policy, now):
            alert_id = await self._raise(spike, router, policy, now)
            if alert_id is not None:
                raised.append((alert_id, spike.dimension))
        for _, dimension in raised:
            SPIKES.labels(dimension).inc()
        if raised:
            self._on_deliveries()
            self._on_outbox()
            log.warning("spikes_raised", count=len(raised))
        return [alert_id for alert_id, _ in raised]

    async def _raise(
        self, spike: Spike, router: Router, policy: SpikePolicy, now: datetime
    ) -> uuid.UUID | None:
        # Imported here: service imports routing and sla, like this module.
        from closeloop_alerts.service import alert_event_row, audit_row, delivery_rows

        key = f"{spike.dimension}:{spike.value}"[:200]
        owner, rule_id = owner_for(router, spike.dimension, spike.value)
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended(f"spike:{key}", 0)))
            )
            open_incident = await session.scalar(
                select(Alert.id).where(
                    Alert.kind == "spike", Alert.incident_key == key, Alert.status != "resolved"
                )
            )
            if open_incident is not None:
                return None
            alert_id = uuid.uuid4()
            ack_due, resolve_due = deadlines(now, router.config.sla.of(policy.priority), owner)
            alert = Alert(
                id=alert_id,
                feedback_id=spike.trigger.feedback_id,
                sentiment_score_id=spike.trigger.score_id,
                status=AlertStatus.OPEN.value,
                priority=policy.priority.value,
                owner_id=owner.id,
                rule_id=rule_id,
                created_at=now,
                updated_at=now,
                kind="spike",
                item_count=spike.negatives,
                last_item_at=spike.trigger.at,
                incident_key=key,
                ack_due_at=ack_due,
                resolve_due_at=resolve_due,
                escalation_level=0,
                reopened_count=0,
            )
            session.add(alert)
            await session.flush()
            note = (
                f"spike: {spike.negatives} of {spike.total} {spike.dimension} {spike.value!r} "
                f"items negative ({spike.rate:.0%}) against a baseline of "
                f"{spike.baseline:.0%} (z = {spike.z:.1f})"
            )
            details: dict[str, Any] = {
                "dimension": spike.dimension,
                "value": spike.value,
                "negatives": spike.negatives,
                "total": spike.total,
                "rate": round(spike.rate, 4),
                "baseline": round(spike.baseline, 4),
                "z": round(spike.z, 2),
            }
            await repository.insert_rows(
                session,
                AlertEvent,
                [
                    audit_row(
                        alert_id,
                        "raised",
                        from_status=None,
                        to_status="open",
                        actor=None,
                        note=note,
                        now=now,
                        details=details,
                    )
                ],
            )
            await repository.insert_deliveries(
                session, delivery_rows(alert_id, owner, "alert.raised", now, timedelta())
            )
            await repository.insert_rows(
                session, Outbox, [alert_event_row(alert, None, actor=None, note=note, now=now)]
            )
        log.warning("spike_detected", dimension=spike.dimension, z=round(spike.z, 2))
        return alert_id
