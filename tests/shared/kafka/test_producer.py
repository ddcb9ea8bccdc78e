"""EventProducer.send_many on the real broker: the batch path loses, reorders and moves
nothing (each key lands where a single send() puts it), headers included."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.admin import ensure_topics
from closeloop_shared.kafka.producer import (
    BATCH_API_MIN_MESSAGES,
    EventProducer,
    OutgoingMessage,
)

pytestmark = pytest.mark.integration


async def _read(
    settings: KafkaSettings, topic: str, expected: int
) -> list[tuple[int, bytes, bytes]]:
    reader = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await reader.start()
    records: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(200):
            for batch in (await reader.getmany(timeout_ms=100)).values():
                for record in batch:
                    assert record.key is not None
                    assert record.value is not None
                    assert dict(record.headers)["n"] == record.value[:8]
                    records.append((record.partition, record.key, record.value))
            if len(records) >= expected:
                break
    finally:
        await reader.stop()
    return records


async def test_a_large_send_arrives_whole_in_order_per_key_on_send_s_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"test.producer.{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_settings, [topic])
    producer = EventProducer(kafka_settings, client_id="test-producer")
    await producer.start()
    try:
        count = BATCH_API_MIN_MESSAGES * 20
        keys = [f"key-{i % 17}".encode() for i in range(count)]
        values = [f"{i:08d}".encode() + b"x" * 900 for i in range(count)]
        # One message larger than a whole record batch takes send()'s own path.
        values[5] = values[5][:8] + b"y" * (kafka_settings.max_batch_size + 1000)
        await producer.send_many(
            [
                OutgoingMessage(topic, value, key=key, headers=[("n", value[:8])])
                for key, value in zip(keys, values, strict=True)
            ]
        )
        expected_partition = {
            key: producer._active._partition(topic, None, key, None, key, None) for key in set(keys)
        }
    finally:
        await producer.stop()

    records = await _read(kafka_settings, topic, count)
    assert sorted(value for _, _, value in records) == sorted(values)
    for partition, key, _ in records:
        assert partition == expected_partition[key]
    for key in set(keys):
        sent = [value[:8] for k, value in zip(keys, values, strict=True) if k == key]
        received = [value[:8] for _, k, value in records if k == key]
        assert received == sent, "per-key order"
