"""Alert lifecycle, SLA clocks and escalation, cross-channel merge: real PostgreSQL, an
injected clock, no broker (events are read from the outbox)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.models import Alert, AlertEvent, AlertItem, Delivery, Outbox
from closeloop_alerts.outbox import (
    ALERT_ASSIGNED,
    ALERT_COMMENTED,
    ALERT_ESCALATED,
    ALERT_REOPENED,
    CUSTOMER_REPLY_REQUESTED,
    CUSTOMER_REPLY_TOPIC,
    OutboxRelay,
)
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import (
    ACKNOWLEDGE,
    AlertIntake,
    Changed,
    Conflict,
    Invalid,
    Lifecycle,
    identities,
)
from closeloop_alerts.sla import SlaMonitor
from closeloop_shared.contracts.alerts import AlertStatus
from closeloop_shared.contracts.feedback import Channel, Customer
from closeloop_shared.contracts.sentiment import ScoredFeedback
from closeloop_shared.events import EventType
from tests.alerts.support import SECRET, scored

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]

ROUTING = f"""\
owners:
  - id: support
    escalation_owner: leads
    notify:
      - {{type: webhook, url: "https://support.test/hook", secret: {SECRET}}}
  - id: leads
    escalation_owner: director
    notify:
      - {{type: slack, url: "https://hooks.slack.test/services/T/B/x"}}
  - id: director
    notify:
      - {{type: email, to: director@example.com}}
  - id: office
    timezone: Europe/Berlin
    working_hours: {{days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}}
    escalation_owner: leads
  - id: billing
rules:
  - id: office-hours
    when: {{touchpoint: office}}
    owner: office
    priority: high
default_owner: support
sla:
  medium: {{acknowledge: 30m, resolve: 4h}}
  high: {{acknowledge: 1h, resolve: 8h}}
root_causes: [product-defect, billing-error, agent-behaviour]
merge: {{window: 2h}}
"""

# A Wednesday, 10:00 UTC (11:00 in Berlin).
T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def state() -> RoutingState:
    return RoutingState(Router(parse_routing(ROUTING)))


@pytest.fixture
def intake(sessionmaker: Sessions, state: RoutingState, clock: FakeClock) -> AlertIntake:
    return AlertIntake(sessionmaker, state, clock=clock)


@pytest.fixture
def lifecycle(sessionmaker: Sessions, state: RoutingState, clock: FakeClock) -> Lifecycle:
    return Lifecycle(sessionmaker, state, clock=clock)


def unique_customer(**fields: str) -> Customer:
    return Customer(id=f"c-{uuid.uuid4().hex[:10]}", **fields)


def item_for(customer: Customer | None = None, **kwargs: Any) -> ScoredFeedback:
    item = scored(**kwargs)
    feedback = item.feedback.model_copy(update={"customer": customer or unique_customer()})
    return item.model_copy(update={"feedback": feedback})


async def raise_alert(intake: AlertIntake, sessions: Sessions, item: ScoredFeedback) -> Alert:
    await intake.process([item])
    async with sessions() as session:
        alert = await session.scalar(select(Alert).where(Alert.feedback_id == item.feedback.id))
    assert alert is not None
    return alert


async def history(sessions: Sessions, alert_id: uuid.UUID) -> list[AlertEvent]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
        )
        return list(rows.all())


async def events(sessions: Sessions, alert_id: uuid.UUID) -> list[dict[str, Any]]:
    """The CloudEvents the outbox holds for the alert, in order."""
    async with sessions() as session:
        payloads = (await session.scalars(select(Outbox.payload).order_by(Outbox.id))).all()
    found = [orjson.loads(payload) for payload in payloads]
    return [event for event in found if event["subject"] == str(alert_id)]


async def deliveries(sessions: Sessions, alert_id: uuid.UUID) -> list[Delivery]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.created_at)
        )
        return list(rows.all())


# --- Lifecycle ----------------------------------------------------------------------------------


async def test_every_transition_writes_its_audit_entry_and_event(
    intake: AlertIntake, lifecycle: Lifecycle, sessionmaker: Sessions, clock: FakeClock
) -> None:
    alert = await raise_alert(intake, sessionmaker, item_for())
    assert alert.owner_id == "support"

    clock.advance(minutes=1)
    assigned = await lifecycle.assign(
        alert.id, actor="desk", assignee="ana@example.com", owner_id=None, note=None
    )
    assert isinstance(assigned, Changed)
    assert assigned.alert.assignee == "ana@example.com"

    clock.advance(minutes=1)
    commented = await lifecycle.comment(alert.id, actor="ana", text="Called, no answer.")
    assert isinstance(commented, Changed)

    clock.advance(minutes=1)
    acked = await lifecycle.transition(alert.id, ACKNOWLEDGE, actor="ana")
    assert isinstance(acked, Changed)

    clock.advance(minutes=1)
    handed = await lifecycle.assign(
        alert.id, actor="ana", assignee=None, owner_id="billing", note="Billing issue"
    )
    assert isinstance(handed, Changed)
    assert handed.alert.owner_id == "billing"

    clock.advance(minutes=1)
    escalated = await lifecycle.escalate(alert.id, actor="ana", note="VIP", to_owner="leads")
    assert isinstance(escalated, Changed)
    assert (escalated.alert.escalation_level, escalated.alert.escalated_to) == (1, "leads")

    clock.advance(minutes=1)
    resolved = await lifecycle.resolve(
        alert.id, actor="lead", note="Refunded", root_cause="billing-error"
    )
    assert isinstance(resolved, Changed)
    assert (resolved.alert.root_cause, resolved.alert.resolved_by) == ("billing-error", "lead")

    clock.advance(minutes=1)
    reopened = await lifecycle.reopen(alert.id, actor="ana", note="Customer wrote again")
    assert isinstance(reopened, Changed)
    assert (reopened.alert.status, reopened.alert.reopened_count) == ("open", 1)
    assert reopened.alert.resolved_at is None
    # A reopened alert gets fresh SLA clocks from now.
    assert reopened.alert.ack_due_at == clock.now + timedelta(minutes=30)

    trail = await history(sessionmaker, alert.id)
    assert [(e.type, e.from_status, e.to_status, e.actor) for e in trail] == [
        ("raised", None, "open", None),
        ("assigned", "open", "open", "desk"),
        ("commented", "open", "open", "ana"),
        ("acknowledged", "open", "acknowledged", "ana"),
        ("assigned", "acknowledged", "acknowledged", "ana"),
        ("escalated", "acknowledged", "acknowledged", "ana"),
        ("resolved", "acknowledged", "resolved", "lead"),
        ("reopened", "resolved", "open", "ana"),
    ]
    assert trail[1].details == {"assignee": {"from": None, "to": "ana@example.com"}}
    assert trail[2].note == "Called, no answer."
    assert trail[4].details == {"owner": {"from": "support", "to": "billing"}}
    assert trail[5].details == {"level": 1, "from_owner": "billing", "to_owner": "leads"}
    assert trail[6].details == {"root_cause": "billing-error"}
    # Who and when: every entry carries the injected clock's time.
    assert [e.occurred_at for e in trail] == [T0 + timedelta(minutes=m) for m in range(8)]

    published = await events(sessionmaker, alert.id)
    assert [e["type"] for e in published] == [
        EventType.ALERT_RAISED,
        ALERT_ASSIGNED,
        ALERT_COMMENTED,
        EventType.ALERT_ACKNOWLEDGED,
        ALERT_ASSIGNED,
        ALERT_ESCALATED,
        EventType.ALERT_RESOLVED,
        ALERT_REOPENED,
    ]
    assert published[2]["data"]["note"] == "Called, no answer."
    assert published[4]["data"]["owner_id"] == "billing"
    assert published[7]["data"]["status"] == "open"

    # The new owner and the escalation owner were notified.
    sent = [(d.owner_id, d.event, d.target_type) for d in await deliveries(sessionmaker, alert.id)]
    assert ("support", "alert.raised", "webhook") in sent
    assert ("leads", "alert.escalated", "slack") in sent


async def test_refused_changes(
    intake: AlertIntake, lifecycle: Lifecycle, sessionmaker: Sessions
) -> None:
    alert = await raise_alert(intake, sessionmaker, item_for())
    assert await lifecycle.reopen(alert.id, actor="a", note="x") == Conflict(AlertStatus.OPEN)
    unknown_owner = await lifecycle.assign(
        alert.id, actor="a", assignee=None, owner_id="nobody", note=None
    )
    assert isinstance(unknown_owner, Invalid)
    assert unknown_owner.code == "unknown_owner"
    bad_cause = await lifecycle.resolve(alert.id, actor="a", note="x", root_cause="weather")
    assert isinstance(bad_cause, Invalid)
    assert bad_cause.code == "unknown_root_cause"
    assert isinstance(await lifecycle.resolve(alert.id, actor="a", note="done"), Changed)
    assert await lifecycle.assign(
        alert.id, actor="a", assignee="b", owner_id=None, note=None
    ) == Conflict(AlertStatus.RESOLVED)
    assert await lifecycle.escalate(alert.id, actor="a", note=None, to_owner=None) == Conflict(
        AlertStatus.RESOLVED
    )
    # Comments are welcome in any state.
    assert isinstance(await lifecycle.comment(alert.id, actor="a", text="post-mortem"), Changed)
    director_alert = await raise_alert(intake, sessionmaker, item_for())
    await lifecycle.assign(
        director_alert.id, actor="a", assignee=None, owner_id="director", note=None
    )
    nowhere = await lifecycle.escalate(director_alert.id, actor="a", note=None, to_owner=None)
    assert isinstance(nowhere, Invalid)
    assert nowhere.code == "no_escalation_owner"


async def test_resolving_with_a_customer_reply_publishes_it_for_the_channel(
    intake: AlertIntake, lifecycle: Lifecycle, sessionmaker: Sessions
) -> None:
    customer = unique_customer(email="dana@example.com", name="Dana")
    item = item_for(customer, channel=Channel.EMAIL)
    alert = await raise_alert(intake, sessionmaker, item)
    resolved = await lifecycle.resolve(
        alert.id,
        actor="ana",
        note="Refund issued",
        customer_reply="We are sorry: your refund is on its way.",
    )
    assert isinstance(resolved, Changed)
    assert resolved.alert.customer_reply_status == "pending"

    async with sessionmaker() as session:
        row = await session.scalar(
            select(Outbox)
            .where(Outbox.event_type == CUSTOMER_REPLY_REQUESTED)
            .order_by(Outbox.id.desc())
        )
    assert row is not None
    assert row.topic == CUSTOMER_REPLY_TOPIC
    assert row.key == str(item.feedback.id).encode()
    event = orjson.loads(row.payload)
    assert event["type"] == CUSTOMER_REPLY_REQUESTED
    data = event["data"]
    assert (data["channel"], data["external_id"]) == ("email", item.feedback.external_id)
    assert data["contact"] == {"id": customer.id, "email": "dana@example.com", "name": "Dana"}
    assert data["text"] == "We are sorry: your refund is on its way."
    assert data["subject"] == "Re: Call 4711"

    class Producer:
        def __init__(self) -> None:
            self.sent: list[Any] = []

        async def send_many(self, messages: list[Any]) -> None:
            self.sent.extend(messages)

    relay = OutboxRelay(
        sessionmaker,
        Producer(),  # type: ignore[arg-type]
        batch_size=10_000,
        poll_interval_s=1,
        retention_s=3600,
    )
    await relay.publish_once()
    async with sessionmaker() as session:
        stored = await session.get(Alert, alert.id)
        assert stored is not None
        assert stored.customer_reply_status == "published"

    reported = await lifecycle.record_customer_reply(
        alert.id, actor="email-gateway", status="sent", detail="250 queued"
    )
    assert isinstance(reported, Changed)
    assert reported.alert.customer_reply_status == "sent"
    trail = await history(sessionmaker, alert.id)
    assert trail[-2].details == {
        "customer_reply": {"reply_id": data["reply_id"], "channel": "email"}
    }
    assert (trail[-1].type, trail[-1].actor) == ("customer_reply_sent", "email-gateway")
    other = await raise_alert(intake, sessionmaker, item_for())
    nothing = await lifecycle.record_customer_reply(other.id, actor="x", status="sent", detail=None)
    assert isinstance(nothing, Invalid)


# --- SLA clocks and escalation ------------------------------------------------------------------


def monitor(sessions: Sessions, state: RoutingState, clock: FakeClock) -> SlaMonitor:
    return SlaMonitor(sessions, state, clock=clock)


async def breached(sessions: Sessions, alert_id: uuid.UUID) -> Alert:
    async with sessions() as session:
        alert = await session.get(Alert, alert_id)
    assert alert is not None
    return alert


async def test_acknowledge_breach_escalates_once_then_resolve_breach_climbs(
    intake: AlertIntake, sessionmaker: Sessions, state: RoutingState, clock: FakeClock
) -> None:
    alert = await raise_alert(intake, sessionmaker, item_for())
    assert alert.ack_due_at == T0 + timedelta(minutes=30)
    assert alert.resolve_due_at == T0 + timedelta(hours=4)

    clock.advance(minutes=29, seconds=59)
    await monitor(sessionmaker, state, clock).check_once()
    assert (await breached(sessionmaker, alert.id)).escalation_level == 0

    clock.advance(seconds=2)
    # Several replicas (or a restart) scanning at once escalate exactly once.
    await asyncio.gather(*(monitor(sessionmaker, state, clock).check_once() for _ in range(4)))
    await monitor(sessionmaker, state, clock).check_once()
    after = await breached(sessionmaker, alert.id)
    assert (after.escalation_level, after.escalated_to) == (1, "leads")
    assert after.ack_breached_at == clock.now
    trail = await history(sessionmaker, alert.id)
    assert [e.type for e in trail] == ["raised", "escalated"]
    assert trail[1].details == {
        "level": 1,
        "from_owner": "support",
        "to_owner": "leads",
        "breach": ["acknowledge"],
    }
    assert trail[1].actor is None
    sent = [(d.owner_id, d.event) for d in await deliveries(sessionmaker, alert.id)]
    assert sent.count(("leads", "alert.escalated")) == 1

    clock.advance(hours=4)
    await monitor(sessionmaker, state, clock).check_once()
    later = await breached(sessionmaker, alert.id)
    assert (later.escalation_level, later.escalated_to) == (2, "director")
    assert later.resolve_breached_at == clock.now
    sent = [(d.owner_id, d.event) for d in await deliveries(sessionmaker, alert.id)]
    assert ("director", "alert.escalated") in sent
    clock.advance(hours=10)
    await monitor(sessionmaker, state, clock).check_once()
    assert (await breached(sessionmaker, alert.id)).escalation_level == 2


async def test_acknowledged_in_time_never_breaches_acknowledge(
    intake: AlertIntake,
    lifecycle: Lifecycle,
    sessionmaker: Sessions,
    state: RoutingState,
    clock: FakeClock,
) -> None:
    alert = await raise_alert(intake, sessionmaker, item_for())
    clock.advance(minutes=10)
    await lifecycle.transition(alert.id, ACKNOWLEDGE, actor="ana")
    clock.advance(hours=1)
    await monitor(sessionmaker, state, clock).check_once()
    assert (await breached(sessionmaker, alert.id)).escalation_level == 0
    await lifecycle.resolve(alert.id, actor="ana", note="done")
    clock.advance(hours=10)
    await monitor(sessionmaker, state, clock).check_once()
    final = await breached(sessionmaker, alert.id)
    assert (final.escalation_level, final.resolve_breached_at) == (0, None)


async def test_clock_runs_in_the_owners_working_hours(
    intake: AlertIntake, sessionmaker: Sessions, state: RoutingState, clock: FakeClock
) -> None:
    # Friday 15:30 UTC = 16:30 in Berlin: 30 minutes left today, then Monday 09:00.
    clock.now = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    alert = await raise_alert(intake, sessionmaker, item_for(touchpoint="office"))
    assert (alert.owner_id, alert.priority) == ("office", "high")
    # 1 h of working time: 30 min on Friday, 30 min on Monday (08:30 UTC = 09:30 CET).
    assert alert.ack_due_at == datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    clock.advance(days=2)  # Sunday: still no breach
    await monitor(sessionmaker, state, clock).check_once()
    assert (await breached(sessionmaker, alert.id)).escalation_level == 0
    clock.now = datetime(2026, 11, 23, 8, 31, tzinfo=UTC)
    await monitor(sessionmaker, state, clock).check_once()
    assert (await breached(sessionmaker, alert.id)).escalated_to == "leads"


# --- Cross-channel merge ------------------------------------------------------------------------


def test_identities_are_normalised() -> None:
    assert identities(
        Customer(id="C-1", email=" Dana@Example.com", phone="+49 (170) 123-4567", handle="@dana")
    ) == ["id:c-1", "email:dana@example.com", "phone:+491701234567", "handle:dana"]
    assert identities(Customer(phone="12")) == []


async def test_items_of_one_customer_on_any_channel_join_one_alert(
    intake: AlertIntake, sessionmaker: Sessions, clock: FakeClock
) -> None:
    tag = uuid.uuid4().hex[:8]
    by_email = Customer(email=f"dana-{tag}@example.com", name="Dana")
    first = item_for(by_email, channel=Channel.EMAIL)
    alert = await raise_alert(intake, sessionmaker, first)

    clock.advance(minutes=20)
    # The same person on the hotline, known there by email and phone.
    by_phone = Customer(email=f"Dana-{tag}@example.com", phone=f"+49 170 {tag[:6]}")
    second = item_for(by_phone, channel=Channel.HOTLINE)
    outcome = await intake.process([second])
    assert (outcome.alerts_raised, outcome.items_merged, outcome.deliveries_queued) == (0, 1, 0)

    clock.advance(minutes=90)
    # ... then on social media, known only by the phone number the hotline taught us.
    third = item_for(Customer(phone=f"+49170{tag[:6]}"), channel=Channel.SOCIAL)
    outcome = await intake.process([third, third])
    assert (outcome.alerts_raised, outcome.items_merged) == (0, 1)
    assert (await intake.process([third])).items_merged == 0  # a redelivery joins nothing

    async with sessionmaker() as session:
        merged = await session.get(Alert, alert.id)
        joined = (
            await session.scalars(select(AlertItem).where(AlertItem.alert_id == alert.id))
        ).all()
    assert merged is not None
    assert (merged.item_count, merged.status) == (3, "open")
    assert {j.feedback_id for j in joined} == {second.feedback.id, third.feedback.id}
    trail = await history(sessionmaker, alert.id)
    assert [e.type for e in trail] == ["raised", "item_joined", "item_joined"]
    assert trail[1].details is not None
    assert trail[1].details["channel"] == "hotline"
    # One page only: the joins queued no notification.
    assert len(await deliveries(sessionmaker, alert.id)) == 1

    # Another customer raises their own alert.
    other = await raise_alert(intake, sessionmaker, item_for(channel=Channel.SOCIAL))
    assert other.id != alert.id
    # After the window, the same customer pages again.
    clock.advance(hours=3)
    late = item_for(Customer(email=f"dana-{tag}@example.com"), channel=Channel.APP)
    assert (await intake.process([late])).alerts_raised == 1


async def test_a_worse_item_raises_the_merged_alerts_priority(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    customer = unique_customer()
    alert = await raise_alert(intake, sessionmaker, item_for(customer))
    assert alert.priority == "medium"
    await intake.process([item_for(customer, touchpoint="office")])
    async with sessionmaker() as session:
        merged = await session.get(Alert, alert.id)
    assert merged is not None
    assert merged.priority == "high"


async def test_merge_is_off_without_the_section(sessionmaker: Sessions) -> None:
    plain = AlertIntake(
        sessionmaker,
        RoutingState(Router(parse_routing(ROUTING.replace("merge: {window: 2h}", "")))),
    )
    customer = unique_customer()
    first = await plain.process([item_for(customer)])
    second = await plain.process([item_for(customer)])
    assert (first.alerts_raised, second.alerts_raised, second.items_merged) == (1, 1, 0)
