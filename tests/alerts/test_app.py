"""The whole service: real broker, real PostgreSQL, a local webhook receiver, the HTTP API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from standardwebhooks import Webhook

from closeloop_alerts.app import create_app
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.outbox import CUSTOMER_REPLY_TOPIC
from closeloop_shared.config import DatabaseSettings, KafkaSettings
from closeloop_shared.contracts.alerts import AlertLifecycle
from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel
from closeloop_shared.events import CloudEvent, EventType, Topic, encode
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage
from tests.alerts.support import SECRET, WebhookReceiver, routing_yaml, scored, scored_event

pytestmark = pytest.mark.integration

T = TypeVar("T")
ACTOR = {"X-Closeloop-Actor": "support-desk"}


async def eventually(check: Callable[[], Awaitable[T | None]], timeout_s: float = 30.0) -> T:
    """Poll ``check`` until it returns something other than None (bounded)."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = await check()
            if value is not None:
                return value
            await asyncio.sleep(0.1)


class LifecycleLog:
    """Reads ALERT_LIFECYCLE from the beginning, in the background."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.events: list[tuple[bytes | None, CloudEvent[AlertLifecycle]]] = []
        self._consumer = AIOKafkaConsumer(
            Topic.ALERT_LIFECYCLE.value,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            # Generic envelope: the lifecycle topic also carries reopened, escalated, ...
            event = CloudEvent[AlertLifecycle].model_validate_json(record.value)
            self.events.append((record.key, event))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def of(self, alert_id: str) -> list[tuple[bytes | None, CloudEvent[AlertLifecycle]]]:
        return [(key, e) for key, e in self.events if str(e.data.alert_id) == alert_id]


@pytest.fixture(scope="module")
def routing_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("alerts")) / "routing.yaml"


@pytest.fixture(scope="module")
async def api(
    routing_path: Path,
    alerts_database_url: str,
    kafka_settings: KafkaSettings,
    receiver: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    routing_file = routing_path
    routing_file.write_text(routing_yaml(receiver.url("/hotline"), receiver.url("/cx")))
    settings = AlertsSettings(
        routing_file=routing_file,
        delivery_schedule_s=(0, 0.1, 0.1),
        delivery_jitter=0.0,
        # The receiver is on loopback, which the SSRF guard blocks unless allowed.
        outbound_allowlist=("127.0.0.1",),
        routing_reload_interval_s=0.2,
        delivery_poll_interval_s=0.1,
        outbox_poll_interval_s=0.1,
        gauge_refresh_interval_s=0.2,
    )
    app = create_app(
        settings, kafka_settings, DatabaseSettings(CLOSELOOP_DATABASE_URL=alerts_database_url)
    )
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://alerts"
        ) as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[EventProducer]:
    events = EventProducer(kafka_settings, client_id="alerts-tests")
    await events.start()
    yield events
    await events.stop()


@pytest.fixture(scope="module")
async def lifecycle(kafka_settings: KafkaSettings) -> AsyncIterator[LifecycleLog]:
    log = LifecycleLog(kafka_settings)
    await log.start()
    yield log
    await log.stop()


async def publish(producer: EventProducer, *items: ScoredFeedback) -> None:
    await producer.send_many(
        [
            OutgoingMessage(
                Topic.FEEDBACK_SCORED.value,
                encode(scored_event(item)),
                key=str(item.feedback.id).encode(),
            )
            for item in items
        ]
    )


async def alert_of(api: httpx.AsyncClient, item: ScoredFeedback) -> dict[str, Any]:
    """The alert of a feedback item, once the consumer stored it."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/v1/feedback/{item.feedback.id}")
        if response.status_code == 404:
            return None
        alert: dict[str, Any] | None = response.json()["alert"]
        return alert

    return await eventually(check)


async def test_ready_and_alive(api: httpx.AsyncClient) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "broker": True}
    assert (await api.get("/healthz")).status_code == 200


async def test_negative_feedback_raises_one_alert_and_a_signed_webhook(
    api: httpx.AsyncClient, producer: EventProducer, receiver: WebhookReceiver
) -> None:
    negative = scored(channel=Channel.HOTLINE, text="Nobody called me back.")
    positive = scored(channel=Channel.HOTLINE, label=SentimentLabel.POSITIVE, score=0.8)
    # The same event three times: redelivery must not raise a second alert or webhook.
    await publish(producer, negative, positive, negative)
    await publish(producer, negative)

    alert = await alert_of(api, negative)
    assert (alert["status"], alert["priority"], alert["owner"], alert["rule_id"]) == (
        "open",
        "high",
        "hotline-team",
        "hotline-negative",
    )

    def mine() -> list[Any]:
        return [
            r
            for r in receiver.at("/hotline")
            if orjson.loads(r.body)["data"]["alert"]["id"] == alert["id"]
        ]

    async def delivered() -> list[Any] | None:
        return mine() or None

    [request] = await eventually(delivered)
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "alert.raised"
    assert body["data"]["feedback"]["text"] == "Nobody called me back."
    assert body["data"]["sentiment"]["model"] == "vader"

    stored = await api.get(f"/v1/feedback/{positive.feedback.id}")
    assert stored.status_code == 200
    assert stored.json()["alert"] is None
    assert stored.json()["sentiment"]["label"] == "positive"

    await asyncio.sleep(1.0)  # give a duplicate the chance to show up
    assert len(mine()) == 1
    listed = await api.get("/v1/alerts", params={"owner": "hotline-team", "limit": 200})
    assert [a["feedback_id"] for a in listed.json()["items"]].count(str(negative.feedback.id)) == 1

    async def recorded() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await api.get(f"/v1/alerts/{alert['id']}")).json()
        return detail if detail["deliveries"][0]["status"] == "delivered" else None

    detail = await eventually(recorded)
    [delivery] = detail["deliveries"]
    assert delivery["webhook_id"] == request.headers["webhook-id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [200]
    assert delivery["attempt_count"] == 1
    assert "url" not in delivery


async def test_acknowledge_resolve_audit_and_lifecycle_events(
    api: httpx.AsyncClient, producer: EventProducer, lifecycle: LifecycleLog
) -> None:
    item = scored(channel=Channel.EMAIL)
    await publish(producer, item)
    alert = await alert_of(api, item)
    alert_id = alert["id"]
    assert (alert["owner"], alert["priority"], alert["channel"]) == ("cx-team", "medium", "email")

    acked = await api.post(f"/v1/alerts/{alert_id}/acknowledge", headers=ACTOR)
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["acknowledged_by"]) == (
        "acknowledged",
        "support-desk",
    )

    twice = await api.post(f"/v1/alerts/{alert_id}/acknowledge", headers=ACTOR)
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "invalid_transition"
    assert twice.json()["error"]["current_status"] == "acknowledged"

    for bad in ({}, {"note": "   "}, {"note": "ok", "extra": 1}):
        refused = await api.post(f"/v1/alerts/{alert_id}/resolve", json=bad, headers=ACTOR)
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_request"
    no_body = await api.post(f"/v1/alerts/{alert_id}/resolve", headers=ACTOR)
    assert no_body.status_code == 422

    resolved = await api.post(
        f"/v1/alerts/{alert_id}/resolve",
        json={"note": "Refund issued"},
        headers={"X-Closeloop-Actor": "lead"},
    )
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["resolution_note"]) == (
        "resolved",
        "Refund issued",
    )
    for action, body in (("acknowledge", None), ("resolve", {"note": "again"})):
        late = await api.post(f"/v1/alerts/{alert_id}/{action}", json=body, headers=ACTOR)
        assert late.status_code == 409
        assert late.json()["error"]["current_status"] == "resolved"

    detail = (await api.get(f"/v1/alerts/{alert_id}")).json()
    assert [(h["type"], h["actor"], h["to_status"]) for h in detail["history"]] == [
        ("raised", None, "open"),
        ("acknowledged", "support-desk", "acknowledged"),
        ("resolved", "lead", "resolved"),
    ]
    assert detail["history"][2]["note"] == "Refund issued"
    assert detail["feedback"]["id"] == str(item.feedback.id)
    assert detail["sentiment"]["label"] == "negative"

    async def three_events() -> list[tuple[bytes | None, CloudEvent[AlertLifecycle]]] | None:
        events = lifecycle.of(alert_id)
        return events if len(events) >= 3 else None

    events = await eventually(three_events)
    assert [e.type for _, e in events] == [
        EventType.ALERT_RAISED,
        EventType.ALERT_ACKNOWLEDGED,
        EventType.ALERT_RESOLVED,
    ]
    assert {key for key, _ in events} == {str(item.feedback.id).encode()}
    assert [e.data.actor for _, e in events] == [None, "support-desk", "lead"]


async def test_list_is_newest_first_with_cursor_pagination(
    api: httpx.AsyncClient, producer: EventProducer
) -> None:
    items = [scored(channel=Channel.APP) for _ in range(5)]
    for item in items:
        await publish(producer, item)
    alerts = [await alert_of(api, item) for item in items]
    mine = {a["id"] for a in alerts}

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(50):
        params: dict[str, Any] = {"owner": "cx-team", "status": "open", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/alerts", params=params)).json()
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [a["id"] for a in seen]
    assert len(ids) == len(set(ids))
    assert mine <= set(ids)
    keys = [(a["created_at"], a["id"]) for a in seen]
    assert keys == sorted(keys, reverse=True)
    assert all(a["owner"] == "cx-team" and a["status"] == "open" for a in seen)

    high = (await api.get("/v1/alerts", params={"priority": "high"})).json()["items"]
    assert all(a["priority"] == "high" for a in high)


async def test_bad_requests_get_json_errors(api: httpx.AsyncClient) -> None:
    unknown = uuid.uuid4()
    cases = [
        ("GET", "/v1/alerts/not-a-uuid", 422, "invalid_request"),
        ("GET", f"/v1/alerts/{unknown}", 404, "alert_not_found"),
        ("POST", f"/v1/alerts/{unknown}/acknowledge", 404, "alert_not_found"),
        ("POST", "/v1/alerts/123/acknowledge", 422, "invalid_request"),
        ("GET", f"/v1/feedback/{unknown}", 404, "feedback_not_found"),
        ("GET", "/v1/feedback/nope", 422, "invalid_request"),
        ("GET", "/v1/alerts?limit=201", 422, "invalid_request"),
        ("GET", "/v1/alerts?limit=0", 422, "invalid_request"),
        ("GET", "/v1/alerts?status=closed", 422, "invalid_request"),
        ("GET", "/v1/alerts?cursor=garbage", 422, "invalid_cursor"),
        # PostgreSQL refuses NUL in text: it must be a 422 here, not a database error.
        ("GET", "/v1/alerts?owner=cx%00team", 422, "invalid_request"),
    ]
    for method, path, status, code in cases:
        response = await api.request(method, path)
        assert response.status_code == status, (path, response.text)
        assert response.json()["error"]["code"] == code, path
    resolve = await api.post(f"/v1/alerts/{unknown}/resolve", json={"note": "x"})
    assert resolve.status_code == 404


async def test_metrics_are_exported(api: httpx.AsyncClient) -> None:
    async def exported() -> str | None:
        text = (await api.get("/metrics")).text
        # One series per owner and priority, zeros included (labels come out sorted).
        wanted = 'closeloop_alerts_open{owner="cx-team",priority="medium"}'
        return text if wanted in text else None

    text = await eventually(exported)
    for name in (
        "closeloop_alerts_raised_total",
        "closeloop_alerts_notifications_total",
        "closeloop_alerts_notification_duration_seconds",
        "closeloop_alerts_feedback_stored_total",
        "closeloop_alerts_outbox_pending",
    ):
        assert name in text
    assert 'closeloop_alerts_notifications_total{outcome="delivered",target_type="webhook"}' in text


# --- Lifecycle, owners, routing and KPIs over HTTP ----------------------------------------------


class ReplyLog:
    """Reads the customer-reply topic from the beginning."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.events: list[tuple[bytes | None, dict[str, Any]]] = []
        self._consumer = AIOKafkaConsumer(
            CUSTOMER_REPLY_TOPIC,
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            self.events.append((record.key, orjson.loads(record.value)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


async def test_lifecycle_over_http_with_a_customer_reply_on_kafka(
    api: httpx.AsyncClient,
    producer: EventProducer,
    lifecycle: LifecycleLog,
    kafka_settings: KafkaSettings,
) -> None:
    item = scored(channel=Channel.SOCIAL)
    await publish(producer, item)
    alert_id = (await alert_of(api, item))["id"]
    base = f"/v1/alerts/{alert_id}"

    assigned = await api.post(
        f"{base}/assign", json={"assignee": "ana", "owner": "hotline-team"}, headers=ACTOR
    )
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["assignee"], assigned.json()["owner"]) == ("ana", "hotline-team")
    assert (await api.post(f"{base}/assign", json={}, headers=ACTOR)).status_code == 422
    unknown = await api.post(f"{base}/assign", json={"owner": "nobody"}, headers=ACTOR)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_owner")

    commented = await api.post(f"{base}/comments", json={"text": "Called twice."}, headers=ACTOR)
    assert commented.status_code == 200
    nul = await api.post(f"{base}/comments", json={"text": "a\x00b"}, headers=ACTOR)
    assert nul.status_code == 422

    escalated = await api.post(f"{base}/escalate", json={"to_owner": "cx-team"}, headers=ACTOR)
    assert escalated.status_code == 200
    assert (escalated.json()["escalation_level"], escalated.json()["escalated_to"]) == (
        1,
        "cx-team",
    )
    nowhere = await api.post(f"{base}/escalate", json={}, headers=ACTOR)
    assert nowhere.json()["error"]["code"] == "no_escalation_owner"

    replies = ReplyLog(kafka_settings)
    await replies.start()
    try:
        resolved = await api.post(
            f"{base}/resolve",
            json={
                "note": "Replaced the order",
                "root_cause": "shipping-damage",
                "customer_reply": "Sorry! A replacement is on its way.",
            },
            headers=ACTOR,
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["root_cause"] == "shipping-damage"
        assert resolved.json()["customer_reply"]["status"] == "pending"

        async def reply() -> dict[str, Any] | None:
            mine = [e for k, e in replies.events if e["data"]["alert_id"] == alert_id]
            return mine[0] if mine else None

        event = await eventually(reply)
    finally:
        await replies.stop()
    assert event["data"]["channel"] == "social"
    assert event["data"]["contact"] == {"id": "c-1", "name": "Dana Example"}
    assert event["data"]["text"] == "Sorry! A replacement is on its way."

    async def published() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await api.get(base)).json()
        return detail if detail["customer_reply"]["status"] == "published" else None

    await eventually(published)
    sent = await api.post(f"{base}/customer-reply", json={"status": "sent"}, headers=ACTOR)
    assert sent.json()["customer_reply"]["status"] == "sent"

    reopened = await api.post(f"{base}/reopen", json={"note": "Broken again"}, headers=ACTOR)
    assert (reopened.status_code, reopened.json()["status"]) == (200, "open")
    twice = await api.post(f"{base}/reopen", json={"note": "x"}, headers=ACTOR)
    assert twice.status_code == 409

    detail = (await api.get(base)).json()
    assert [h["type"] for h in detail["history"]] == [
        "raised",
        "assigned",
        "commented",
        "escalated",
        "resolved",
        "customer_reply_sent",
        "reopened",
    ]
    assert {d["owner"] for d in detail["deliveries"]} >= {"cx-team", "hotline-team"}
    assert detail["sla"]["acknowledge_due_at"] is not None

    async def all_events() -> list[str] | None:
        # At least once: a retried publish may repeat an event; its id stays the same.
        unique = {e.id: e.type for _, e in lifecycle.of(alert_id)}
        types = list(unique.values())
        return types if len(types) >= 6 else None

    assert await eventually(all_events) == [
        "com.closeloop.alert.raised.v1",
        "com.closeloop.alert.assigned.v1",
        "com.closeloop.alert.commented.v1",
        "com.closeloop.alert.escalated.v1",
        "com.closeloop.alert.resolved.v1",
        "com.closeloop.alert.reopened.v1",
    ]


async def test_owners_admin_api_and_hot_reload(api: httpx.AsyncClient, routing_path: Path) -> None:
    listed = (await api.get("/v1/owners")).json()["items"]
    assert {o["id"]: o["managed_by"] for o in listed} == {
        "cx-team": "file",
        "hotline-team": "file",
    }
    [target] = next(o for o in listed if o["id"] == "cx-team")["targets"]
    assert (target["type"], target["host"], target["signed"]) == ("webhook", "127.0.0.1", True)
    assert "url" not in target
    assert "secret" not in str(listed)

    owner = {
        "name": "Night shift",
        "timezone": "Asia/Shanghai",
        "working_hours": {"days": ["mon", "tue"], "start": "20:00", "end": "23:30"},
        "escalation_owner": "cx-team",
        "notify": [{"type": "slack", "url": "https://hooks.slack.com/services/T/B/secret"}],
    }
    created = await api.put("/v1/owners/night-shift", json=owner)
    assert created.status_code == 201, created.text
    assert created.json()["working_hours"] == {
        "days": ["mon", "tue"],
        "start": "20:00",
        "end": "23:30",
    }
    assert "secret" not in created.text
    replaced = await api.put("/v1/owners/night-shift", json={**owner, "name": "Nights"})
    assert (replaced.status_code, replaced.json()["name"]) == (200, "Nights")
    assert (await api.get("/v1/owners/night-shift")).json()["managed_by"] == "api"

    bad = await api.put("/v1/owners/x", json={"timezone": "Mars/Base"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_owner")
    assert any("timezone" in p for p in bad.json()["error"]["problems"])
    dangling = await api.put("/v1/owners/y", json={"escalation_owner": "ghost"})
    assert dangling.status_code == 409
    assert (await api.put("/v1/owners/z", json={"id": "other"})).status_code == 422

    from_file = await api.delete("/v1/owners/cx-team")
    assert from_file.status_code == 409
    assert (await api.delete("/v1/owners/night-shift")).status_code == 204
    assert (await api.delete("/v1/owners/night-shift")).status_code == 404
    assert (await api.get("/v1/owners/night-shift")).status_code == 404

    # Editing the routing file takes effect without a restart.
    original = await asyncio.to_thread(routing_path.read_text)
    edited = original.replace("owners:\n", "owners:\n  - id: weekend\n", 1)
    await asyncio.to_thread(routing_path.write_text, edited)
    try:

        async def reloaded() -> bool | None:
            return True if (await api.get("/v1/owners/weekend")).status_code == 200 else None

        await eventually(reloaded, timeout_s=10)
    finally:
        await asyncio.to_thread(routing_path.write_text, original)

    async def gone() -> bool | None:
        return True if (await api.get("/v1/owners/weekend")).status_code == 404 else None

    await eventually(gone, timeout_s=10)


async def test_routing_dry_run_explains_the_decision(api: httpx.AsyncClient) -> None:
    body = {
        "feedback": {
            "channel": "hotline",
            "external_id": "dry-1",
            "text": "Nobody answers the phone",
            "occurred_at": "2026-11-22T10:00:00Z",
        },
        "sentiment": {"label": "negative", "score": -0.9, "topics": ["wait"]},
    }
    answer = await api.post("/v1/routing/dry-run", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["alert"], result["rule_id"], result["owner"], result["priority"]) == (
        True,
        "hotline-negative",
        "hotline-team",
        "high",
    )
    assert result["sla"]["acknowledge_s"] == 3600
    assert result["rules"] == [{"rule_id": "hotline-negative", "matched": True, "failed": []}]
    email = {**body, "feedback": {**body["feedback"], "channel": "email"}}  # type: ignore[dict-item]
    other = (await api.post("/v1/routing/dry-run", json=email)).json()
    assert (other["owner"], other["rule_id"]) == ("cx-team", None)
    assert other["rules"][0]["failed"] == ["channel"]
    positive = {**body, "sentiment": {"label": "positive", "score": 0.9}}
    assert (await api.post("/v1/routing/dry-run", json=positive)).json()["alert"] is False
    assert (await api.post("/v1/routing/dry-run", json={"feedback": {}})).status_code == 422


async def test_kpis_over_http(api: httpx.AsyncClient) -> None:
    report = await api.get("/v1/kpis", params={"group_by": "channel"})
    assert report.status_code == 200, report.text
    data = report.json()
    assert data["group_by"] == "channel"
    assert data["total"]["volume"] >= 1
    assert {g["key"] for g in data["groups"]} <= {"hotline", "email", "social", "app"}
    bad_range = await api.get(
        "/v1/kpis", params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    )
    assert (bad_range.status_code, bad_range.json()["error"]["code"]) == (422, "invalid_range")
    naive = await api.get("/v1/kpis", params={"from": "2026-11-01T00:00:00"})
    assert naive.status_code == 422
    assert (await api.get("/v1/kpis", params={"group_by": "customer"})).status_code == 422
