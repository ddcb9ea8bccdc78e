"""The real app against the real broker: what lands on the topic, retries, and outages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from closeloop_devstack.infra import free_port
from closeloop_shared.config import KafkaSettings
from closeloop_shared.contracts.feedback import Feedback
from closeloop_shared.events import EventType, FeedbackReceivedEvent, Topic
from tests.ingest.support import (
    FORM_HEADERS,
    FORWARDED_HTTPS,
    PUBLIC_HOST,
    TWILIO_AUTH_TOKEN,
    app_store_review,
    basic_auth,
    contact_lens,
    feedback_item,
    form,
    google_play_review,
    ingest_settings,
    instagram_comment,
    mailgun_fields,
    meta_body,
    meta_headers,
    page_comment,
    postmark_body,
    running_app,
    transcription_params,
    twilio_signature,
)

pytestmark = pytest.mark.integration

TWILIO_PATH = "/v1/webhooks/twilio/transcription"


@dataclass(frozen=True)
class Consumed:
    key: bytes | None
    event: dict[str, Any]


@pytest.fixture
async def live(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(
        ingest_settings(publish_ack_timeout_s=10), kafka=kafka_settings
    ) as client:
        deadline = time.monotonic() + 20
        # The producer connects in the background; readiness says when.
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "the producer never connected"
            await asyncio.sleep(0.1)
        yield client


async def consume(
    kafka_settings: KafkaSettings, wanted_ids: set[str], at_least: int | None = None
) -> list[Consumed]:
    """Every message on the topic whose event id is wanted, read from the start by a new group."""
    expected = at_least if at_least is not None else len(wanted_ids)
    consumer = AIOKafkaConsumer(
        Topic.FEEDBACK_RECEIVED.value,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=f"test-ingest-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=kafka_settings.fetch_max_wait_ms,
        session_timeout_ms=kafka_settings.session_timeout_ms,
        heartbeat_interval_ms=kafka_settings.heartbeat_interval_ms,
    )
    await consumer.start()
    found: list[Consumed] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event.get("id") in wanted_ids:
                        found.append(Consumed(record.key, event))
    finally:
        await consumer.stop()
    return found


def twilio_request(params: dict[str, str]) -> dict[str, Any]:
    url = f"https://{PUBLIC_HOST}{TWILIO_PATH}"
    headers = {
        **FORM_HEADERS,
        **FORWARDED_HTTPS,
        "X-Twilio-Signature": twilio_signature(TWILIO_AUTH_TOKEN, url, params),
    }
    return {"content": form(params), "headers": headers}


async def test_every_channel_lands_on_the_topic_as_a_cloudevent(
    live: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    meta_raw = meta_body("page", [page_comment()])
    instagram_raw = meta_body("instagram", [instagram_comment()], entry_id="17841400000000000")
    responses = {
        "api": [await live.post("/v1/feedback", json=feedback_item())],
        "twilio": [await live.post(TWILIO_PATH, **twilio_request(transcription_params()))],
        "hotline": [await live.post("/v1/webhooks/hotline/transcript", json=contact_lens())],
        "mailgun": [
            await live.post(
                "/v1/webhooks/mailgun", content=form(mailgun_fields()), headers=FORM_HEADERS
            )
        ],
        "postmark": [
            await live.post(
                "/v1/webhooks/postmark",
                json=postmark_body(),
                headers={"Authorization": basic_auth()},
            )
        ],
        "meta": [
            await live.post("/v1/webhooks/meta", content=meta_raw, headers=meta_headers(meta_raw)),
            await live.post(
                "/v1/webhooks/meta", content=instagram_raw, headers=meta_headers(instagram_raw)
            ),
        ],
        "app_reviews": [
            await live.post("/v1/webhooks/app/reviews", json={"data": [app_store_review()]}),
            await live.post("/v1/webhooks/app/reviews", json={"reviews": [google_play_review()]}),
        ],
    }
    adapter_of: dict[str, str] = {}
    for adapter, answers in responses.items():
        for response in answers:
            assert response.status_code in {200, 202}, (adapter, response.text)
            body = response.json()
            for feedback_id in body["ids"] if "ids" in body else [body["id"]]:
                adapter_of[feedback_id] = adapter
    assert len(adapter_of) == 9

    consumed = await consume(kafka_settings, set(adapter_of))
    assert {c.event["id"] for c in consumed} == set(adapter_of)
    channels = set()
    for message in consumed:
        event = message.event
        feedback_id = event["id"]
        # The envelope, exactly.
        assert event["specversion"] == "1.0"
        assert event["type"] == EventType.FEEDBACK_RECEIVED.value
        assert event["source"] == f"/closeloop/ingest/{adapter_of[feedback_id]}"
        assert event["subject"] == feedback_id
        assert event["datacontenttype"] == "application/json"
        assert message.key == feedback_id.encode()
        # The data is canonical feedback with its identity stamped.
        feedback = Feedback.model_validate(event["data"])
        assert str(feedback.id) == feedback_id
        assert datetime.fromisoformat(event["time"]) == feedback.received_at
        assert feedback.text
        FeedbackReceivedEvent.model_validate(event)
        channels.add(feedback.channel.value)
    assert channels == {"app", "hotline", "email", "social"}


async def test_the_same_provider_webhook_twice_is_the_same_feedback(
    live: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    request = twilio_request(transcription_params())
    first = await live.post(TWILIO_PATH, **request)
    second = await live.post(TWILIO_PATH, **request)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    feedback_id = first.json()["id"]

    # Both deliveries were acknowledged, so both are on the topic: same event id,
    # same key (same partition), which is what consumers deduplicate on.
    consumed = await consume(kafka_settings, {feedback_id}, at_least=2)
    assert len(consumed) == 2
    assert {c.key for c in consumed} == {feedback_id.encode()}
    assert {c.event["data"]["external_id"] for c in consumed} == {
        request["content"].decode().split("TranscriptionSid=")[1].split("&")[0]
    }


async def test_without_a_broker_the_service_starts_and_answers_503() -> None:
    unreachable = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=1000
    )
    settings = ingest_settings(publish_ack_timeout_s=0.5)
    started = time.monotonic()
    async with running_app(settings, kafka=unreachable) as client:
        assert time.monotonic() - started < 5, "startup must not wait for the broker"
        response = await client.post("/v1/feedback", json=feedback_item())
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "broker_unavailable"

        webhook = await client.post(TWILIO_PATH, **twilio_request(transcription_params()))
        assert webhook.status_code == 503

        readiness = await client.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["checks"] == {"broker": False}
        assert (await client.get("/healthz")).status_code == 200
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5, "shutdown must not wait for the broker either"
