"""The delivery dispatcher against the real PostgreSQL and a local webhook receiver."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from closeloop_alerts.delivery import DeliveryDispatcher, RetryPolicy, make_client
from closeloop_alerts.models import Alert, Delivery, DeliveryAttempt
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from closeloop_shared.events import utcnow
from tests.alerts.support import SECRET, Reply, WebhookReceiver, scored

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
TEAMS = ("ok", "flaky", "gone", "moved", "busy", "many")


def routing(receiver: WebhookReceiver, teams: Sequence[str] = TEAMS) -> RoutingState:
    owners = "".join(
        f"""
  - id: {team}-team
    notify:
      - {{type: webhook, url: "{receiver.url("/" + team)}", secret: {SECRET}}}"""
        for team in teams
    )
    rules = "".join(
        f"""
  - id: {team}
    when: {{touchpoint: {team}}}
    owner: {team}-team"""
        for team in teams
    )
    document = f"owners:{owners}\n  - id: nobody\nrules:{rules}\ndefault_owner: nobody\n"
    return RoutingState(Router(parse_routing(document)))


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout_s=2.0) as http:
        yield http


@asynccontextmanager
async def running(
    sessionmaker: Sessions,
    state: RoutingState,
    client: httpx.AsyncClient,
    schedule: tuple[float, ...] = (0, 0.05, 0.05),
) -> AsyncIterator[DeliveryDispatcher]:
    dispatcher = DeliveryDispatcher(
        sessionmaker,
        state,
        client,
        RetryPolicy(schedule_s=schedule, jitter=0.0),
        concurrency=4,
        poll_interval_s=0.05,
        lease_s=30,
        allowlist=("127.0.0.1",),
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.drain(5)


async def raise_alert(sessionmaker: Sessions, state: RoutingState, team: str) -> uuid.UUID:
    item = scored(touchpoint=team)
    await AlertIntake(sessionmaker, state).process([item])
    async with sessionmaker() as session:
        alert_id = await session.scalar(
            select(Alert.id).where(Alert.feedback_id == item.feedback.id)
        )
    assert alert_id is not None
    return alert_id


async def settled(sessionmaker: Sessions, alert_id: uuid.UUID, timeout_s: float = 10) -> Delivery:
    """The alert's (single) delivery once it left pending."""
    async with asyncio.timeout(timeout_s):
        while True:
            async with sessionmaker() as session:
                delivery = await session.scalar(
                    select(Delivery).where(Delivery.alert_id == alert_id)
                )
            assert delivery is not None
            if delivery.status != "pending":
                return delivery
            await asyncio.sleep(0.05)


async def attempts_of(sessionmaker: Sessions, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
    async with sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(DeliveryAttempt)
                    .where(DeliveryAttempt.delivery_id == delivery_id)
                    .order_by(DeliveryAttempt.number)
                )
            ).all()
        )


async def test_2xx_is_delivered_signed(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    async with running(sessionmaker, state, client):
        alert_id = await raise_alert(sessionmaker, state, "ok")
        [request] = await receiver.wait_for("/ok", 1)
        delivery = await settled(sessionmaker, alert_id)
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["data"]["alert"]["id"] == str(alert_id)
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None
    [attempt] = await attempts_of(sessionmaker, delivery.id)
    assert (attempt.number, attempt.status_code, attempt.outcome, attempt.error) == (
        1,
        200,
        "delivered",
        None,
    )
    assert attempt.duration_s > 0
    assert attempt.attempted_at.tzinfo is not None


async def test_500_then_success_is_retried_with_the_same_webhook_id(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    receiver.script("/flaky", Reply(500), Reply(503), Reply(200))
    async with running(sessionmaker, state, client):
        alert_id = await raise_alert(sessionmaker, state, "flaky")
        requests = await receiver.wait_for("/flaky", 3)
        delivery = await settled(sessionmaker, alert_id)
    assert {r.headers["webhook-id"] for r in requests} == {delivery.webhook_id}
    assert len({r.body for r in requests}) == 1  # the same body on every retry
    for request in requests:
        Webhook(SECRET).verify(request.body, request.headers)  # a fresh signature each time
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    attempts = await attempts_of(sessionmaker, delivery.id)
    assert [(a.status_code, a.outcome) for a in attempts] == [
        (500, "retrying"),
        (503, "retrying"),
        (200, "delivered"),
    ]
    assert attempts[0].error == "HTTP 500"


async def test_410_disables_the_target_and_what_is_queued_for_it(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    receiver.script("/gone", Reply(410), Reply(410))
    first = await raise_alert(sessionmaker, state, "gone")
    queued = await raise_alert(sessionmaker, state, "gone")
    async with sessionmaker() as session, session.begin():
        # The second one waits for a later retry: a 410 must stop it without a request.
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == queued)
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )
    async with running(sessionmaker, state, client):
        delivery = await settled(sessionmaker, first)
        other = await settled(sessionmaker, queued)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("disabled", 1, 410)
    assert (other.status, other.attempts) == ("disabled", 0)
    assert other.last_error is not None
    assert "410" in other.last_error
    assert len(receiver.at("/gone")) == 1


async def test_302_is_a_failure_and_retries_run_out(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    moved = Reply(302, {"location": receiver.url("/elsewhere")})
    receiver.script("/moved", moved, moved, moved)
    async with running(sessionmaker, state, client):
        alert_id = await raise_alert(sessionmaker, state, "moved")
        delivery = await settled(sessionmaker, alert_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 302)
    attempts = await attempts_of(sessionmaker, delivery.id)
    assert [a.outcome for a in attempts] == ["retrying", "retrying", "failed"]
    assert receiver.at("/elsewhere") == []


async def test_retry_after_is_honoured(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    receiver.script("/busy", Reply(503, {"retry-after": "3600"}))
    async with running(sessionmaker, state, client):
        alert_id = await raise_alert(sessionmaker, state, "busy")
        await receiver.wait_for("/busy", 1)
        await asyncio.sleep(0.3)  # several schedule delays (0.05 s) pass: no second attempt
        async with sessionmaker() as session:
            delivery = await session.scalar(select(Delivery).where(Delivery.alert_id == alert_id))
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - utcnow()
    assert timedelta(minutes=59) < wait <= timedelta(hours=1)
    assert len(receiver.at("/busy")) == 1


async def test_a_target_removed_from_routing_fails_without_a_request(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    alert_id = await raise_alert(sessionmaker, routing(receiver), "ok")
    before = len(receiver.at("/ok"))
    async with running(sessionmaker, routing(receiver, teams=("flaky",)), client):
        delivery = await settled(sessionmaker, alert_id)
    assert (delivery.status, delivery.last_error) == ("failed", "target no longer configured")
    assert len(receiver.at("/ok")) == before


async def test_two_dispatchers_never_send_one_delivery_twice(
    sessionmaker: Sessions, receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    state = routing(receiver)
    alert_ids = [await raise_alert(sessionmaker, state, "many") for _ in range(12)]
    async with running(sessionmaker, state, client), running(sessionmaker, state, client):
        requests = await receiver.wait_for("/many", 12)
        for alert_id in alert_ids:
            assert (await settled(sessionmaker, alert_id)).status == "delivered"
    await asyncio.sleep(0.2)
    ids = [r.headers["webhook-id"] for r in receiver.at("/many")]
    assert len(requests) == len(ids) == 12
    assert len(set(ids)) == 12
