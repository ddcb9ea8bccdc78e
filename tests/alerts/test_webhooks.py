"""Webhook signing, payload, sending and the retry policy, against a local HTTP receiver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from closeloop_alerts.config import SVIX_SCHEDULE_S, AlertsSettings
from closeloop_alerts.delivery import (
    AttemptResult,
    RetryPolicy,
    make_client,
    parse_retry_after,
    render_payload,
    signed_headers,
)
from closeloop_alerts.models import Alert, Feedback, SentimentScore
from closeloop_alerts.outbound import Allowlist, BlockedURL, check_url, pinned_request
from closeloop_alerts.service import feedback_row, score_row, webhook_id
from closeloop_shared.contracts.feedback import Channel, RatingType
from closeloop_shared.events import utcnow
from tests.alerts.support import SECRET, Reply, WebhookReceiver, scored, send_signed_webhook

OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def sample_rows() -> tuple[Alert, Feedback, SentimentScore]:
    item = scored(channel=Channel.EMAIL, rating=(RatingType.NPS, 3), tier="gold")
    feedback = Feedback(**feedback_row(item))
    score = SentimentScore(id=1, **score_row(item))
    alert = Alert(
        id=uuid.uuid4(),
        feedback_id=feedback.id,
        sentiment_score_id=1,
        status="acknowledged",
        priority="high",
        owner_id="cx-team",
        rule_id="email-negative",
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )
    return alert, feedback, score


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout_s=2.0) as http:
        yield http


# --- Payload and signature ----------------------------------------------------------------------


def test_payload_has_the_documented_shape() -> None:
    alert, feedback, score = sample_rows()
    body = orjson.loads(render_payload(alert, feedback, score))
    assert body["type"] == "alert.raised"
    assert body["timestamp"] == "2026-03-01T12:00:00Z"
    data = body["data"]
    assert set(data) == {"alert", "feedback", "sentiment"}
    assert data["alert"] == {
        "id": str(alert.id),
        "priority": "high",
        "owner": "cx-team",
        "status": "open",  # the snapshot of the raise, the same on every retry
        "rule_id": "email-negative",
        "created_at": "2026-03-01T12:00:00Z",
    }
    assert set(data["feedback"]) == {
        "id",
        "channel",
        "external_id",
        "text",
        "subject",
        "customer",
        "occurred_at",
        "touchpoint",
        "journey_stage",
        "rating",
    }
    assert data["feedback"]["channel"] == "email"
    assert data["feedback"]["rating"] == {"type": "nps", "value": 3.0}
    assert data["feedback"]["customer"]["tier"] == "gold"
    assert set(data["sentiment"]) == {
        "label",
        "score",
        "confidence",
        "language",
        "model",
        "model_version",
    }
    assert data["sentiment"]["label"] == "negative"


def test_signature_verifies_with_standardwebhooks() -> None:
    alert, feedback, score = sample_rows()
    body = render_payload(alert, feedback, score)
    msg_id = webhook_id(alert.id, "cx-team", "webhook-1")
    headers = signed_headers(SECRET, msg_id, body, utcnow())
    assert headers["webhook-id"] == msg_id
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == orjson.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"negative", b"positive"), headers)


def test_webhook_id_is_stable_per_alert_and_target() -> None:
    alert_id = uuid.uuid4()
    first = webhook_id(alert_id, "cx-team", "webhook-1")
    assert first == webhook_id(alert_id, "cx-team", "webhook-1")
    assert first != webhook_id(alert_id, "cx-team", "webhook-2")
    assert first != webhook_id(uuid.uuid4(), "cx-team", "webhook-1")
    assert first.startswith("msg_")
    assert "." not in first  # the spec forbids dots: they delimit the signed content


# --- Sending ------------------------------------------------------------------------------------


async def test_2xx_is_received_signed(receiver: WebhookReceiver, client: httpx.AsyncClient) -> None:
    receiver.script("/ok", Reply(204))
    alert, feedback, score = sample_rows()
    body = render_payload(alert, feedback, score)
    result = await send_signed_webhook(client, receiver.url("/ok"), SECRET, "msg_abc", body)
    assert (result.status_code, result.error) == (204, None)
    assert result.duration_s > 0
    [request] = receiver.at("/ok")
    assert request.body == body
    assert request.headers["content-type"] == "application/json"
    assert Webhook(SECRET).verify(request.body, request.headers)["type"] == "alert.raised"


async def test_redirects_are_not_followed(
    receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    receiver.script("/moved", Reply(302, {"location": receiver.url("/elsewhere")}))
    result = await send_signed_webhook(client, receiver.url("/moved"), SECRET, "msg_r", b"{}")
    assert result.status_code == 302
    assert result.error == "HTTP 302"
    assert receiver.at("/elsewhere") == []


async def test_error_status_and_retry_after(
    receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    receiver.script("/busy", Reply(503, {"retry-after": "120"}), Reply(500))
    busy = await send_signed_webhook(client, receiver.url("/busy"), SECRET, "msg_b", b"{}")
    assert (busy.status_code, busy.retry_after_s) == (503, 120.0)
    broken = await send_signed_webhook(client, receiver.url("/busy"), SECRET, "msg_b", b"{}")
    assert (broken.status_code, broken.retry_after_s, broken.error) == (500, None, "HTTP 500")


async def test_timeout_and_refused_connection_are_errors(receiver: WebhookReceiver) -> None:
    receiver.script("/slow", Reply(200, delay_s=1.0))
    async with make_client(timeout_s=0.2) as http:
        slow = await send_signed_webhook(http, receiver.url("/slow"), SECRET, "msg_s", b"{}")
        assert slow.status_code is None
        assert slow.error is not None
        assert slow.error.startswith("timeout")
        closed = await send_signed_webhook(http, "http://127.0.0.1:9/", SECRET, "msg_c", b"{}")
        assert closed.status_code is None
        assert closed.error is not None
        assert "ConnectError" in closed.error


# --- Retry policy -------------------------------------------------------------------------------


def result(status: int | None, retry_after: float | None = None) -> AttemptResult:
    return AttemptResult(utcnow(), 0.01, status, None if status == 200 else "x", retry_after)


def test_policy_outcomes() -> None:
    policy = RetryPolicy(schedule_s=SVIX_SCHEDULE_S, jitter=0.0)
    assert policy.decide(result(200), 1) == ("delivered", None)
    assert policy.decide(result(299), 8) == ("delivered", None)
    assert policy.decide(result(410), 1) == ("disabled", None)
    # After the first (immediate) attempt fails, the next comes 5 s later, then 5 min...
    assert policy.decide(result(500), 1) == ("retrying", 5.0)
    assert policy.decide(result(302), 2) == ("retrying", 300.0)
    assert policy.decide(result(None), 7) == ("retrying", 36000.0)
    assert policy.decide(result(404), 8) == ("failed", None)


def test_policy_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(schedule_s=(0, 100), jitter=0.1)
    low = policy.decide(result(500), 1, rand=lambda: 0.0)
    high = policy.decide(result(500), 1, rand=lambda: 1.0)
    assert low[0] == high[0] == "retrying"
    assert low[1] == pytest.approx(90.0)
    assert high[1] == pytest.approx(110.0)


def test_policy_honours_retry_after_within_a_cap() -> None:
    policy = RetryPolicy(schedule_s=(0, 5, 300), jitter=0.0, max_retry_after_s=600)
    assert policy.decide(result(429, retry_after=60), 1) == ("retrying", 60.0)
    assert policy.decide(result(503, retry_after=1), 2) == ("retrying", 300.0)  # never sooner
    assert policy.decide(result(503, retry_after=99999), 1) == ("retrying", 600.0)


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- SSRF guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://224.0.0.1/",
    ],
)
async def test_private_loopback_and_link_local_addresses_are_blocked(url: str) -> None:
    with pytest.raises(BlockedURL, match="non-public"):
        await check_url(url, Allowlist.parse(()))


async def test_public_addresses_pass_and_other_schemes_do_not() -> None:
    assert str(await check_url("https://8.8.8.8/hook", Allowlist.parse(()))) == "8.8.8.8"
    with pytest.raises(BlockedURL, match="scheme"):
        await check_url("ftp://8.8.8.8/", Allowlist.parse(()))
    with pytest.raises(BlockedURL, match="resolve"):
        await check_url("https://no-such-host.invalid/", Allowlist.parse(()))


async def test_allowlist_takes_hosts_suffixes_addresses_and_cidrs() -> None:
    allow = Allowlist.parse(["127.0.0.1", "10.20.0.0/16", "localhost", "*.corp.test", " "])
    assert str(await check_url("http://127.0.0.1:9/x", allow)) == "127.0.0.1"
    assert str(await check_url("http://10.20.3.4/", allow)) == "10.20.3.4"
    await check_url("http://localhost/", allow)
    assert allow.allows_host("a.b.corp.test")
    assert not allow.allows_host("corp.test.evil")
    with pytest.raises(BlockedURL):
        await check_url("http://10.21.0.1/", allow)


async def test_requests_go_to_the_checked_address_with_the_host_name_kept(
    receiver: WebhookReceiver,
) -> None:
    async with make_client(timeout_s=2.0) as http:
        request = await pinned_request(
            http,
            "POST",
            f"http://localhost:{receiver.port}/pinned",
            Allowlist.parse(["localhost"]),
            content=b"{}",
            headers={"content-type": "application/json"},
        )
        assert request.url.host in ("127.0.0.1", "::1")
        assert request.headers["host"] == f"localhost:{receiver.port}"
        secure = await pinned_request(
            http,
            "POST",
            "https://8.8.8.8/x",
            Allowlist.parse(()),
            content=b"",
            headers={},
        )
        assert secure.extensions["sni_hostname"] == "8.8.8.8"


# --- Settings -----------------------------------------------------------------------------------


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_ROUTING_FILE", "/etc/closeloop/routing.yaml")
    monkeypatch.setenv("CLOSELOOP_ALERTS_DELIVERY_SCHEDULE_S", "0, 0.5,2")
    monkeypatch.setenv("CLOSELOOP_OUTBOUND_ALLOWLIST", "Hooks.Example.com,*.corp.test")
    settings = AlertsSettings()
    assert settings.port == 8003
    assert str(settings.routing_file) == "/etc/closeloop/routing.yaml"
    assert settings.delivery_schedule_s == (0.0, 0.5, 2.0)
    assert settings.outbound_allowlist == ("hooks.example.com", "*.corp.test")
    assert settings.delivery_timeout_s == 15.0


def test_default_schedule_is_svix() -> None:
    assert AlertsSettings().delivery_schedule_s == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    with pytest.raises(ValueError, match="at least one"):
        AlertsSettings(delivery_schedule_s=())
    with pytest.raises(ValueError, match="must exceed"):
        AlertsSettings(delivery_timeout_s=30, delivery_lease_s=20)
