"""The batch consumer against the real broker: commit after processing, retry, dead letters."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from closeloop_shared.config import KafkaSettings
from closeloop_shared.events import dead_letter_topic
from closeloop_shared.kafka.admin import ensure_topics
from closeloop_shared.kafka.consumer import (
    BatchConsumer,
    ConsumerPolicy,
    Received,
    TransientError,
)
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage

pytestmark = pytest.mark.integration

FAST_RETRIES = ConsumerPolicy(
    max_attempts=2, retry_initial_s=0.05, retry_max_s=0.2, max_consecutive_dead_letters=50
)


@dataclass
class Scenario:
    topic: str
    group: str
    producer: EventProducer
    settings: KafkaSettings
    handled: list[str] = field(default_factory=list)

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.topic, self.group)

    async def produce(self, *values: bytes) -> None:
        await self.producer.send_many(
            [OutgoingMessage(self.topic, v, key=str(i).encode()) for i, v in enumerate(values)]
        )

    def consumer(
        self,
        handle: Callable[[Sequence[Received[str]]], object],
        policy: ConsumerPolicy = FAST_RETRIES,
    ) -> BatchConsumer[str]:
        async def handler(items: Sequence[Received[str]]) -> None:
            result = handle(items)
            if asyncio.iscoroutine(result):
                await result

        return BatchConsumer(
            settings=self.settings,
            topic=self.topic,
            group_id=self.group,
            decode=_decode,
            handle=handler,
            producer=self.producer,
            policy=policy,
        )


def _decode(raw: bytes) -> str:
    text = raw.decode()
    if not text.startswith("ok:"):
        raise ValueError("not an ok: message")
    return text


async def _eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _read_all(settings: KafkaSettings, topic: str, expected: int) -> list[object]:
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await reader.start()
    records: list[object] = []
    try:
        deadline = time.monotonic() + 20
        while len(records) < expected and time.monotonic() < deadline:
            batches = await reader.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await reader.stop()
    return records


@pytest.fixture
async def scenario(kafka_settings: KafkaSettings) -> AsyncIterator[Scenario]:
    topic = f"test.consumer.{uuid.uuid4().hex[:10]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_settings, [topic, dead_letter_topic(topic, group)])
    producer = EventProducer(kafka_settings, client_id="test-consumer")
    await producer.start()
    yield Scenario(topic=topic, group=group, producer=producer, settings=kafka_settings)
    await producer.stop()


async def _committed_total(scenario: Scenario) -> int:
    probe = AIOKafkaConsumer(
        bootstrap_servers=scenario.settings.bootstrap_servers, group_id=scenario.group
    )
    await probe.start()
    try:
        total = 0
        for partition in range(scenario.settings.topic_partitions):
            committed = await probe.committed(TopicPartition(scenario.topic, partition))
            total += committed or 0
        return total
    finally:
        await probe.stop()


async def test_processes_every_message_then_commits(scenario: Scenario) -> None:
    await scenario.produce(*(f"ok:{i}".encode() for i in range(20)))
    consumer = scenario.consumer(lambda items: scenario.handled.extend(i.value for i in items))
    await consumer.start()
    await _eventually(lambda: len(scenario.handled) == 20)
    await consumer.stop()
    assert sorted(scenario.handled) == sorted(f"ok:{i}" for i in range(20))
    assert await _committed_total(scenario) == 20


async def test_counters_are_exported_at_zero_before_the_first_message(scenario: Scenario) -> None:
    # rate() sees no increase in a series that first appears already counting.
    consumer = scenario.consumer(lambda items: scenario.handled.extend(i.value for i in items))
    await consumer.start()
    try:
        for outcome in ("ok", "dead_lettered"):
            labels = {"topic": scenario.topic, "group": scenario.group, "outcome": outcome}
            assert REGISTRY.get_sample_value("closeloop_kafka_messages_consumed_total", labels) == 0
        retries = {"group": scenario.group}
        assert REGISTRY.get_sample_value("closeloop_kafka_batch_retries_total", retries) == 0
    finally:
        await consumer.stop()


async def test_undecodable_message_is_dead_lettered_with_its_origin(scenario: Scenario) -> None:
    await scenario.produce(b"ok:before", b"\xff\xfe garbage", b"ok:after")
    consumer = scenario.consumer(lambda items: scenario.handled.extend(i.value for i in items))
    await consumer.start()
    await _eventually(lambda: len(scenario.handled) == 2)
    await consumer.stop()
    assert sorted(scenario.handled) == ["ok:after", "ok:before"]
    [dead] = await _read_all(scenario.settings, scenario.dlq, 1)
    headers = dict(dead.headers)  # type: ignore[attr-defined]
    assert dead.value == b"\xff\xfe garbage"  # type: ignore[attr-defined]
    assert headers["x-closeloop-dlq-source-topic"] == scenario.topic.encode()
    assert headers["x-closeloop-dlq-reason"] == b"undecodable"
    assert int(headers["x-closeloop-dlq-source-offset"]) >= 0
    assert headers["x-closeloop-dlq-error"].startswith(b"UnicodeDecodeError")
    assert consumer.healthy is False  # stopped
    assert await _committed_total(scenario) == 3


async def test_one_poison_message_does_not_hold_back_its_batch(scenario: Scenario) -> None:
    await scenario.produce(*(f"ok:{i}".encode() for i in range(10)), b"ok:poison")

    def handle(items: Sequence[Received[str]]) -> None:
        if any(i.value == "ok:poison" for i in items):
            raise RuntimeError("cannot process the poison message")
        scenario.handled.extend(i.value for i in items)

    consumer = scenario.consumer(handle)
    await consumer.start()
    await _eventually(lambda: len(scenario.handled) == 10)
    [dead] = await _read_all(scenario.settings, scenario.dlq, 1)
    await consumer.stop()
    assert dead.value == b"ok:poison"  # type: ignore[attr-defined]
    assert dict(dead.headers)["x-closeloop-dlq-reason"] == b"processing_failed"  # type: ignore[attr-defined]


async def test_transient_failures_are_retried_not_dead_lettered(scenario: Scenario) -> None:
    await scenario.produce(b"ok:a", b"ok:b")
    failures = {"left": 4}

    def handle(items: Sequence[Received[str]]) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise TransientError("database away")
        scenario.handled.extend(i.value for i in items)

    consumer = scenario.consumer(handle)
    await consumer.start()
    await _eventually(lambda: len(scenario.handled) == 2)
    await consumer.stop()
    assert failures["left"] == 0
    assert await _read_all(scenario.settings, scenario.dlq, 1) == []


async def test_stop_during_retries_leaves_offsets_uncommitted(scenario: Scenario) -> None:
    await scenario.produce(b"ok:a")
    attempts: list[int] = []

    def always_away(items: Sequence[Received[str]]) -> None:
        attempts.append(len(items))
        raise TransientError("database away")

    consumer = scenario.consumer(always_away)
    await consumer.start()
    await _eventually(lambda: len(attempts) >= 2)
    await consumer.stop()
    assert await _committed_total(scenario) == 0

    # The next consumer of the group gets the same message again.
    redelivered = scenario.consumer(lambda items: scenario.handled.extend(i.value for i in items))
    await redelivered.start()
    await _eventually(lambda: scenario.handled == ["ok:a"])
    await redelivered.stop()


async def test_circuit_opens_after_consecutive_dead_letters(scenario: Scenario) -> None:
    await scenario.produce(*(b"bad" for _ in range(5)))
    policy = ConsumerPolicy(max_attempts=1, retry_initial_s=0.01, max_consecutive_dead_letters=3)
    consumer = scenario.consumer(lambda items: None, policy=policy)
    await consumer.start()
    await _eventually(lambda: consumer.failure is not None)
    assert consumer.healthy is False
    await consumer.stop()
    # It stopped before committing the batch that tripped the circuit.
    assert await _committed_total(scenario) == 0
