"""Every notify target against local receivers: an HTTP server and an aiosmtpd SMTP server,
through the real dispatcher and PostgreSQL, with the SSRF guard allowing only loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from email import message_from_bytes
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from closeloop_alerts.delivery import DeliveryDispatcher, RetryPolicy, make_client
from closeloop_alerts.models import Alert, Delivery, DeliveryAttempt, TargetHealth
from closeloop_alerts.notifiers import (
    SmtpSettings,
    bot_error,
    dingtalk_sign,
    feishu_sign,
)
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from closeloop_devstack.infra import free_port
from tests.alerts.support import SECRET, Reply, WebhookReceiver, scored

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
DING_SECRET = "SEC0123456789abcdef0123456789abcdef"
FEISHU_SECRET = "feishu-signing-secret"
OK_DINGTALK = Reply(200, {"content-type": "application/json"})


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp() -> Any:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


def routing(receiver: WebhookReceiver) -> RoutingState:
    document = f"""\
owners:
  - id: all-channels
    escalation_owner: backup
    notify:
      - {{type: webhook, id: hook, url: "{receiver.url("/hook")}", secret: {SECRET}}}
      - {{type: slack, id: slack, url: "{receiver.url("/slack")}"}}
      - {{type: wecom, id: wecom, url: "{receiver.url("/wecom")}?key=k"}}
      - {{type: dingtalk, id: ding, url: "{receiver.url("/ding")}?access_token=t", secret: {DING_SECRET}}}
      - {{type: feishu, id: feishu, url: "{receiver.url("/feishu")}", secret: {FEISHU_SECRET}}}
      - {{type: email, id: mail, to: [ops@example.com, lead@example.com]}}
  - id: refusing
    escalation_owner: backup
    notify:
      - {{type: dingtalk, id: ding, url: "{receiver.url("/ding-refuses")}"}}
  - id: flaky
    escalation_owner: backup
    notify:
      - {{type: webhook, id: hook, url: "{receiver.url("/flaky")}", secret: {SECRET}}}
  - id: private
    notify:
      - {{type: slack, url: "http://10.0.0.8/hook"}}
  - id: backup
    notify:
      - {{type: slack, id: slack, url: "{receiver.url("/backup")}"}}
rules:
  - {{id: all, when: {{touchpoint: all}}, owner: all-channels}}
  - {{id: refusing, when: {{touchpoint: refusing}}, owner: refusing}}
  - {{id: flaky, when: {{touchpoint: flaky}}, owner: flaky}}
  - {{id: private, when: {{touchpoint: private}}, owner: private}}
default_owner: backup
"""
    return RoutingState(Router(parse_routing(document)))


@asynccontextmanager
async def running(
    sessions: Sessions,
    state: RoutingState,
    client: httpx.AsyncClient,
    smtp_port: int,
    schedule: Sequence[float] = (0, 0.05, 0.05, 0.05, 0.05),
) -> AsyncIterator[DeliveryDispatcher]:
    dispatcher = DeliveryDispatcher(
        sessions,
        state,
        client,
        RetryPolicy(schedule_s=tuple(schedule), jitter=0.0),
        concurrency=8,
        poll_interval_s=0.05,
        lease_s=30,
        allowlist=("127.0.0.1",),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, starttls=False),
        unhealthy_after=3,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.drain(5)


async def raise_for(sessions: Sessions, state: RoutingState, touchpoint: str) -> uuid.UUID:
    item = scored(touchpoint=touchpoint, text="Checkout failed three times, 结账失败")
    await AlertIntake(sessions, state).process([item])
    async with sessions() as session:
        alert_id = await session.scalar(
            select(Alert.id).where(Alert.feedback_id == item.feedback.id)
        )
    assert alert_id is not None
    return alert_id


async def settled(sessions: Sessions, alert_id: uuid.UUID, count: int) -> list[Delivery]:
    async with asyncio.timeout(20):
        while True:
            async with sessions() as session:
                rows = list(
                    (
                        await session.scalars(
                            select(Delivery)
                            .where(Delivery.alert_id == alert_id)
                            .order_by(Delivery.target_key, Delivery.event)
                        )
                    ).all()
                )
            if len(rows) >= count and all(row.status != "pending" for row in rows):
                return rows
            await asyncio.sleep(0.05)


def test_signatures_follow_the_vendors_schemes() -> None:
    # DingTalk: HMAC-SHA256 keyed with the secret over "<ms>\n<secret>", base64, URL-encoded.
    expected = base64.b64encode(
        hmac.new(
            DING_SECRET.encode(), f"1700000000000\n{DING_SECRET}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert unquote_plus(dingtalk_sign(DING_SECRET, 1_700_000_000_000)) == expected
    # Feishu: HMAC-SHA256 keyed with "<s>\n<secret>" over an empty message, base64.
    key = f"1700000000\n{FEISHU_SECRET}".encode()
    assert (
        feishu_sign(FEISHU_SECRET, 1_700_000_000)
        == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    )


def test_bot_errors_in_200_answers() -> None:
    assert bot_error("dingtalk", b'{"errcode":0,"errmsg":"ok"}') is None
    assert "310000" in (
        bot_error("dingtalk", b'{"errcode":310000,"errmsg":"sign not match"}') or ""
    )
    assert bot_error("feishu", b'{"code":19021,"msg":"sign match fail"}') is not None
    assert bot_error("feishu", b'{"StatusCode":0}') is None
    assert bot_error("wecom", b'{"errcode":93000,"errmsg":"invalid webhook url"}') is not None
    assert bot_error("slack", b"invalid_payload") is None
    assert bot_error("wecom", b"not json") is None


async def test_every_target_type_is_delivered_in_its_format(
    sessionmaker: Sessions, receiver: WebhookReceiver, smtp: Any
) -> None:
    controller, mailbox = smtp
    state = routing(receiver)
    for path in ("/ding", "/feishu", "/wecom"):
        receiver.script(path, Reply(200, {"content-type": "application/json"}))
    async with (
        make_client(timeout_s=2.0) as client,
        running(sessionmaker, state, client, controller.port),
    ):
        alert_id = await raise_for(sessionmaker, state, "all")
        rows = await settled(sessionmaker, alert_id, 6)
    assert {row.target_key: row.status for row in rows} == {
        "ding": "delivered",
        "feishu": "delivered",
        "hook": "delivered",
        "mail": "delivered",
        "slack": "delivered",
        "wecom": "delivered",
    }

    [hook] = [r for r in receiver.at("/hook") if str(alert_id) in r.body.decode()]
    assert Webhook(SECRET).verify(hook.body, hook.headers)["type"] == "alert.raised"

    [slack] = [r for r in receiver.at("/slack") if str(alert_id) in r.body.decode()]
    body = orjson.loads(slack.body)
    assert body["text"].startswith("[MEDIUM] New alert")
    assert [block["type"] for block in body["blocks"]] == [
        "header",
        "section",
        "section",
        "context",
    ]
    assert "结账失败" in body["blocks"][2]["text"]["text"]

    [wecom] = [r for r in receiver.at("/wecom") if str(alert_id) in r.body.decode()]
    assert orjson.loads(wecom.body)["msgtype"] == "markdown"
    assert "结账失败" in orjson.loads(wecom.body)["markdown"]["content"]

    [ding] = [r for r in receiver.at("/ding") if str(alert_id) in r.body.decode()]
    assert orjson.loads(ding.body)["msgtype"] == "markdown"
    async with sessionmaker() as session:
        ding_attempt = await session.scalar(
            select(DeliveryAttempt.url)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.alert_id == alert_id, Delivery.target_key == "ding")
        )
    # The recorded URL is the configured one: the signature is not stored.
    assert ding_attempt is not None
    assert "sign=" not in ding_attempt

    [feishu] = [r for r in receiver.at("/feishu") if str(alert_id) in r.body.decode()]
    sent = orjson.loads(feishu.body)
    assert sent["msg_type"] == "text"
    assert sent["sign"] == feishu_sign(FEISHU_SECRET, int(sent["timestamp"]))

    # The SMTP server runs in its own thread: poll (it answered before the row settled).
    async with asyncio.timeout(5):
        while not any(str(alert_id) in m[2].decode(errors="replace") for m in mailbox.messages):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    [(sender, rcpts, raw)] = [
        m for m in mailbox.messages if str(alert_id) in m[2].decode(errors="replace")
    ]
    assert rcpts == ["ops@example.com", "lead@example.com"]
    mail = message_from_bytes(raw)
    assert mail["Subject"].startswith("[Closeloop] [MEDIUM] New alert")
    webhook_ids = {row.target_key: row.webhook_id for row in rows}
    assert mail["Message-ID"] == f"<{webhook_ids['mail']}@closeloop>"
    del sender


async def test_dingtalk_signature_travels_in_the_query(
    sessionmaker: Sessions, receiver: WebhookReceiver, smtp: Any
) -> None:
    """The receiver records the path only, so read the query from a transport hook."""
    seen: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url)

    controller, _ = smtp
    state = routing(receiver)
    receiver.script("/ding", OK_DINGTALK)
    async with (
        httpx.AsyncClient(
            timeout=2.0, follow_redirects=False, event_hooks={"request": [record]}
        ) as client,
        running(sessionmaker, state, client, controller.port),
    ):
        alert_id = await raise_for(sessionmaker, state, "all")
        await settled(sessionmaker, alert_id, 6)
    [url] = [u for u in seen if u.path == "/ding"]
    params = parse_qs(urlsplit(str(url)).query)
    assert params["access_token"] == ["t"]
    timestamp = int(params["timestamp"][0])
    assert params["sign"][0] == unquote_plus(dingtalk_sign(DING_SECRET, timestamp))
    assert url.host == "127.0.0.1"


async def test_a_bot_refusal_is_a_failure_and_falls_back_after_the_last_attempt(
    sessionmaker: Sessions, receiver: WebhookReceiver, smtp: Any
) -> None:
    controller, _ = smtp
    state = routing(receiver)
    refusal = Reply(
        200,
        {"content-type": "application/json"},
        body=b'{"errcode":310000,"errmsg":"keywords not in content"}',
    )
    receiver.script("/ding-refuses", refusal, refusal)
    async with (
        make_client(timeout_s=2.0) as client,
        running(sessionmaker, state, client, controller.port, schedule=(0, 0.05)),
    ):
        alert_id = await raise_for(sessionmaker, state, "refusing")
        rows = await settled(sessionmaker, alert_id, 2)
    statuses = {(row.owner_id, row.event): row for row in rows}
    ding = statuses[("refusing", "alert.raised")]
    assert (ding.status, ding.attempts) == ("failed", 2)
    assert ding.last_error is not None
    assert "errcode=310000" in ding.last_error
    # The owner could not be reached: the escalation owner heard of it.
    assert statuses[("backup", "alert.fallback")].status == "delivered"


async def test_a_target_that_keeps_failing_turns_unhealthy_and_alerts_fall_back(
    sessionmaker: Sessions, receiver: WebhookReceiver, smtp: Any
) -> None:
    controller, _ = smtp
    state = routing(receiver)
    receiver.script("/flaky", *[Reply(503)] * 20)
    async with (
        make_client(timeout_s=2.0) as client,
        running(sessionmaker, state, client, controller.port, schedule=(0, 0.05, 0.05, 0.05)),
    ):
        first = await raise_for(sessionmaker, state, "flaky")
        rows = await settled(sessionmaker, first, 2)
        by_event = {(row.owner_id, row.event): row for row in rows}
        assert by_event[("flaky", "alert.raised")].status == "failed"
        assert by_event[("flaky", "alert.raised")].attempts == 4
        # Unhealthy after the third failure: one fallback, not one per failure.
        assert by_event[("backup", "alert.fallback")].status == "delivered"
        async with sessionmaker() as session:
            health = await session.get(TargetHealth, ("flaky", "hook"))
        assert health is not None
        assert health.unhealthy_since is not None
        assert health.consecutive_failures == 4

        # While the target is unhealthy, a new alert goes to the escalation owner at once.
        second = await raise_for(sessionmaker, state, "flaky")
        rows = await settled(sessionmaker, second, 2)
        assert {(row.owner_id, row.event) for row in rows} == {
            ("flaky", "alert.raised"),
            ("backup", "alert.fallback"),
        }
        # A success makes it healthy again.
        receiver.script("/flaky", Reply(200))
        third = await raise_for(sessionmaker, state, "flaky")
        rows = await settled(sessionmaker, third, 2)
        async with sessionmaker() as session:
            health = await session.get(TargetHealth, ("flaky", "hook"), populate_existing=True)
        assert health is not None
        assert (health.unhealthy_since, health.consecutive_failures) == (None, 0)


async def test_private_addresses_are_refused_without_a_request(
    sessionmaker: Sessions, receiver: WebhookReceiver, smtp: Any
) -> None:
    controller, _ = smtp
    state = routing(receiver)
    async with (
        make_client(timeout_s=2.0) as client,
        running(sessionmaker, state, client, controller.port),
    ):
        alert_id = await raise_for(sessionmaker, state, "private")
        [row] = await settled(sessionmaker, alert_id, 1)
    assert row.status == "failed"
    assert row.attempts == 1  # a blocked address is not retried
    assert row.last_error is not None
    assert "non-public address 10.0.0.8" in row.last_error
