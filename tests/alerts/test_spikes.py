"""Spike detection: the windowed z-score on its own, then one incident per spike in the
database with an injected clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.models import Alert, AlertEvent, Delivery
from closeloop_alerts.routing import Router, RoutingState, SpikePolicy, parse_routing
from closeloop_alerts.service import AlertIntake, Lifecycle
from closeloop_alerts.spikes import Observation, SpikeDetector, detect, owner_for
from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.contracts.sentiment import SentimentLabel
from tests.alerts.support import SECRET, scored

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
POLICY = SpikePolicy(
    dimensions=["touchpoint"], window=3600, baseline_windows=4, z_threshold=3.0, min_negatives=3
)


def observation(hours_ago: float, negative: bool, touchpoint: str = "checkout") -> Observation:
    return Observation(
        at=NOW - timedelta(hours=hours_ago),
        feedback_id=uuid.uuid4(),
        score_id=1,
        negative=negative,
        values={"channel": ("app",), "touchpoint": (touchpoint,), "topic": ()},
    )


def baseline(touchpoint: str = "checkout") -> list[Observation]:
    """Four past hours with 10 items each, 1 negative in each: rate 10 %, σ 0."""
    return [
        observation(hour + 0.5, negative=index == 0, touchpoint=touchpoint)
        for hour in range(1, 5)
        for index in range(10)
    ]


def test_a_jump_over_the_baseline_is_a_spike() -> None:
    # This hour: 6 of 10 negative = 60 %; z = (0.6 − 0.1) / max(0, 0.05) = 10.
    current = [observation(0.2, negative=index < 6) for index in range(10)]
    [spike] = detect(baseline() + current, POLICY, NOW)
    assert (spike.dimension, spike.value, spike.negatives, spike.total) == (
        "touchpoint",
        "checkout",
        6,
        10,
    )
    assert spike.rate == pytest.approx(0.6)
    assert spike.baseline == pytest.approx(0.1)
    assert spike.z == pytest.approx(10.0)
    assert spike.trigger.at == NOW - timedelta(hours=0.2)


def test_the_usual_rate_or_too_few_negatives_are_not() -> None:
    usual = [observation(0.2, negative=index == 0) for index in range(10)]
    assert detect(baseline() + usual, POLICY, NOW) == []
    # 2 of 2 negative is 100 %, but fewer than min_negatives (3).
    few = [observation(0.2, negative=True) for _ in range(2)]
    assert detect(baseline() + few, POLICY, NOW) == []
    # A noisy baseline (0 %, 50 %, 0 %, 50 %: σ 0.25) absorbs a jump to 60 %: z = 1.4.
    noisy = [
        observation(hour + 0.5, negative=index < (5 if hour % 2 else 0))
        for hour in range(1, 5)
        for index in range(10)
    ]
    current = [observation(0.2, negative=index < 6) for index in range(10)]
    assert detect(noisy + current, POLICY, NOW) == []
    # Only the listed dimensions are watched.
    channel_only = POLICY.model_copy(update={"dimensions": ["channel"]})
    spikes = detect(baseline() + current, channel_only, NOW)
    assert [(s.dimension, s.value) for s in spikes] == [("channel", "app")]


ROUTING = f"""\
owners:
  - id: checkout-team
    notify:
      - {{type: webhook, url: "https://checkout.test/hook", secret: {SECRET}}}
  - id: cx
rules:
  - {{id: checkout, when: {{touchpoint: [checkout, payment]}}, owner: checkout-team}}
default_owner: cx
spikes: {{dimensions: [touchpoint], window: 1h, baseline_windows: 4, min_negatives: 3}}
"""


def test_the_owner_of_the_touchpoint_gets_the_incident() -> None:
    router = Router(parse_routing(ROUTING))
    owner, rule = owner_for(router, "touchpoint", "payment")
    assert (owner.id, rule) == ("checkout-team", "checkout")
    assert owner_for(router, "touchpoint", "login")[0].id == "cx"


class Clock:
    def __init__(self) -> None:
        self.now = NOW - timedelta(hours=4, minutes=30)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.integration
async def test_one_incident_per_spike_to_the_touchpoints_owner(sessionmaker: Sessions) -> None:
    clock = Clock()
    state = RoutingState(Router(parse_routing(ROUTING)))
    intake = AlertIntake(sessionmaker, state, clock=clock)
    touchpoint = f"checkout-{uuid.uuid4().hex[:6]}"
    # The rule names "checkout"; this run's touchpoint is unique, so it goes to cx.
    for _ in range(4):
        batch = []
        for index in range(10):
            label = SentimentLabel.NEGATIVE if index == 0 else SentimentLabel.POSITIVE
            item = scored(channel=Channel.APP, touchpoint=touchpoint, label=label, score=0.5)
            item = item.model_copy(
                update={"feedback": item.feedback.model_copy(update={"received_at": clock.now})}
            )
            batch.append(item)
        await intake.process(batch)
        clock.now += timedelta(hours=1)
    spike_items = []
    for index in range(10):
        label = SentimentLabel.NEGATIVE if index < 6 else SentimentLabel.POSITIVE
        item = scored(channel=Channel.APP, touchpoint=touchpoint, label=label, score=-0.6)
        item = item.model_copy(
            update={"feedback": item.feedback.model_copy(update={"received_at": clock.now})}
        )
        spike_items.append(item)
    await intake.process(spike_items)

    clock.now += timedelta(minutes=10)
    detector = SpikeDetector(sessionmaker, state, clock=clock)
    [incident_id] = await detector.check_once()
    # A second scan (or another replica) finds the incident open and raises nothing.
    assert await detector.check_once() == []

    async with sessionmaker() as session:
        incident = await session.get(Alert, incident_id)
        assert incident is not None
        events = (
            await session.scalars(select(AlertEvent).where(AlertEvent.alert_id == incident_id))
        ).all()
        sent = (
            await session.scalars(select(Delivery).where(Delivery.alert_id == incident_id))
        ).all()
    assert (incident.kind, incident.incident_key, incident.owner_id, incident.priority) == (
        "spike",
        f"touchpoint:{touchpoint}",
        "cx",
        "high",
    )
    assert incident.item_count == 6
    [raised] = events
    assert raised.details is not None
    assert (raised.details["negatives"], raised.details["total"]) == (6, 10)
    assert sent == []  # cx has no targets
    # Each negative item still has its own alert; the incident is one more, not one per item.
    async with sessionmaker() as session:
        item_alerts = (
            await session.scalars(
                select(Alert.id).where(
                    Alert.feedback_id.in_([i.feedback.id for i in spike_items]),
                    Alert.kind == "item",
                )
            )
        ).all()
    assert len(item_alerts) == 6

    # Resolved, the incident can be raised again by a later spike.
    await Lifecycle(sessionmaker, state, clock=clock).resolve(
        incident_id, actor="ops", note="Payment provider outage"
    )
    assert len(await detector.check_once()) == 1
