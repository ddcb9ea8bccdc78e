"""The service against the real broker: received feedback in, scored events and dead letters out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from asgi_lifespan import LifespanManager

from closeloop_sentiment.app import create_app
from closeloop_sentiment.config import SentimentSettings
from closeloop_sentiment.scoring import MODEL_NAME, MODEL_VERSION
from closeloop_sentiment.service import CONSUMER_GROUP, EVENT_SOURCE, SCORED_EVENT_NAMESPACE
from closeloop_shared.config import KafkaSettings
from closeloop_shared.contracts.feedback import (
    Channel,
    Feedback,
    FeedbackIn,
    Rating,
    RatingType,
    identify,
)
from closeloop_shared.events import (
    EventType,
    FeedbackReceivedEvent,
    FeedbackScoredEvent,
    Topic,
    dead_letter_topic,
    encode,
)
from closeloop_shared.kafka.consumer import DLQ_HEADER_PREFIX

pytestmark = pytest.mark.integration

# Tansu takes a few seconds to form a consumer group; everything else is fast.
DELIVERY_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
async def sentiment(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SentimentSettings(environment="test"), kafka_settings)
    async with (
        LifespanManager(app, startup_timeout=10, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT_S
        while (await client.get("/readyz")).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, "service never became ready"
            await asyncio.sleep(0.1)
        yield client


def received_event(channel: Channel, text: str, **fields: Any) -> FeedbackReceivedEvent:
    now = datetime.now(UTC)
    item = FeedbackIn(
        channel=channel, external_id=f"test-{uuid.uuid4()}", text=text, occurred_at=now, **fields
    )
    feedback = identify(item, received_at=now)
    return FeedbackReceivedEvent(
        id=str(uuid.uuid4()),
        source="/closeloop/test",
        subject=str(feedback.id),
        time=now,
        data=feedback,
    )


async def produce(
    kafka: KafkaSettings, messages: list[tuple[bytes, bytes]], partition: int | None = None
) -> None:
    """Write (key, value) pairs to feedback.received in order, waiting for acks=all."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(
                Topic.FEEDBACK_RECEIVED.value, value, key=key, partition=partition
            )
    finally:
        await producer.stop()


async def consume(
    kafka: KafkaSettings, topic: str, wanted: Callable[[Any], bool], count: int
) -> list[Any]:
    """Read ``topic`` from the start in a fresh group until ``count`` wanted records arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        fetch_max_wait_ms=kafka.fetch_max_wait_ms,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT_S
        while len(found) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            found.extend(r for records in batches.values() for r in records if wanted(r))
    finally:
        await consumer.stop()
    return found


async def scored_events(
    kafka: KafkaSettings, feedback: list[Feedback]
) -> dict[uuid.UUID, tuple[Any, FeedbackScoredEvent]]:
    """The scored record and event for each feedback item (re-deliveries collapse by id)."""
    keys = {str(item.id).encode() for item in feedback}
    records = await consume(kafka, Topic.FEEDBACK_SCORED.value, lambda r: r.key in keys, len(keys))
    by_feedback: dict[uuid.UUID, tuple[Any, FeedbackScoredEvent]] = {}
    for record in records:
        event = FeedbackScoredEvent.model_validate_json(record.value)
        by_feedback[event.data.feedback.id] = (record, event)
    return by_feedback


@dataclass(frozen=True)
class Case:
    event: FeedbackReceivedEvent
    language: str
    label: str


def pipeline_cases() -> list[Case]:
    return [
        Case(
            received_event(
                Channel.EMAIL,
                "My package never arrived and I was charged twice. Terrible.",
                subject="Order 1042",
            ),
            "en",
            "negative",
        ),
        Case(
            received_event(Channel.APP, "Love the new app, checkout is fast and easy!"),
            "en",
            "positive",
        ),
        Case(received_event(Channel.SOCIAL, "客服态度很差，等了三天还没发货"), "zh", "negative"),
        Case(received_event(Channel.APP, "服务很好，非常满意"), "zh", "positive"),
        Case(
            # Only the customer's turns count: the agent's courtesy would make it positive.
            received_event(
                Channel.HOTLINE,
                "Agent: Thank you for calling, wonderful to hear from you! Customer: ...",
                attributes={
                    "transcript": [
                        {"role": "AGENT", "text": "Thank you for calling, wonderful to help!"},
                        {"role": "CUSTOMER", "text": "My internet is still not working."},
                        {"role": "AGENT", "text": "Great, have a lovely day!"},
                    ]
                },
            ),
            "en",
            "negative",
        ),
        Case(
            received_event(
                Channel.APP, "Delivered on Tuesday.", rating=Rating(type=RatingType.STARS, value=1)
            ),
            "en",
            "negative",
        ),
        Case(received_event(Channel.SOCIAL, "Le colis est arrivé hier"), "fr", "neutral"),
    ]


async def test_received_feedback_is_scored_and_published(
    sentiment: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    cases = pipeline_cases()
    await produce(kafka_settings, [(str(c.event.data.id).encode(), encode(c.event)) for c in cases])

    scored = await scored_events(kafka_settings, [c.event.data for c in cases])

    assert set(scored) == {c.event.data.id for c in cases}
    for case in cases:
        feedback = case.event.data
        record, event = scored[feedback.id]
        sentiment_ = event.data.sentiment
        assert (sentiment_.language, sentiment_.label.value) == (case.language, case.label), (
            feedback.text
        )
        assert record.key == str(feedback.id).encode()
        assert event.type == EventType.FEEDBACK_SCORED
        assert event.specversion == "1.0"
        assert event.source == EVENT_SOURCE
        assert event.subject == str(feedback.id)
        assert event.time == sentiment_.scored_at
        assert event.id == str(
            uuid.uuid5(SCORED_EVENT_NAMESPACE, f"{feedback.id}:{MODEL_NAME}:{MODEL_VERSION}")
        )
        assert event.data.feedback == feedback
        assert (sentiment_.model, sentiment_.model_version) == (MODEL_NAME, MODEL_VERSION)

    metrics = (await sentiment.get("/metrics")).text
    assert 'closeloop_sentiment_items_scored_total{label="negative",language="zh"}' in metrics
    assert (
        f'closeloop_sentiment_model_info{{model="{MODEL_NAME}",version="{MODEL_VERSION}"}} 1.0'
        in metrics
    )
    assert "closeloop_sentiment_scoring_seconds_count" in metrics


async def test_poison_messages_are_dead_lettered_and_the_rest_still_scored(
    sentiment: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    poison_key = f"poison-{uuid.uuid4()}".encode()
    not_the_contract_key = f"poison-{uuid.uuid4()}".encode()
    good = [
        received_event(Channel.APP, "Worst update ever, the app keeps crashing"),
        received_event(Channel.APP, "谢谢，问题解决了，非常满意"),
    ]
    # One partition, so the good messages really come after the poison in the log.
    await produce(
        kafka_settings,
        [
            (poison_key, b"not json"),
            (not_the_contract_key, b'{"specversion": "1.0", "type": "something.else"}'),
            *[(str(e.data.id).encode(), encode(e)) for e in good],
        ],
        partition=0,
    )

    dead_letters, scored = await asyncio.gather(
        consume(
            kafka_settings,
            dead_letter_topic(Topic.FEEDBACK_RECEIVED, CONSUMER_GROUP),
            lambda r: r.key in (poison_key, not_the_contract_key),
            2,
        ),
        scored_events(kafka_settings, [e.data for e in good]),
    )

    by_key = {record.key: record for record in dead_letters}
    assert by_key[poison_key].value == b"not json"
    for record in dead_letters:
        headers = {
            name.removeprefix(DLQ_HEADER_PREFIX): value.decode()
            for name, value in record.headers
            if name.startswith(DLQ_HEADER_PREFIX)
        }
        assert headers["source-topic"] == Topic.FEEDBACK_RECEIVED.value
        assert headers["source-partition"] == "0"
        assert int(headers["source-offset"]) >= 0
        assert headers["consumer-group"] == CONSUMER_GROUP
        assert headers["reason"] == "undecodable"
        assert headers["error"].startswith("ValidationError")

    assert {item.label.value for item in (e.data.sentiment for _, e in scored.values())} == {
        "negative",
        "positive",
    }
    assert set(scored) == {e.data.id for e in good}
    assert (await sentiment.get("/healthz")).status_code == 200


async def test_score_endpoint_uses_the_loaded_model(sentiment: httpx.AsyncClient) -> None:
    response = await sentiment.post(
        "/v1/score", json={"text": "The refund never arrived, terrible support"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["label"], body["language"], body["model"]) == ("negative", "en", MODEL_NAME)
    assert -1.0 <= body["score"] < 0

    rated = await sentiment.post(
        "/v1/score", json={"text": "包裹到了", "rating": {"type": "nps", "value": 10}}
    )
    assert rated.json()["label"] == "positive"
