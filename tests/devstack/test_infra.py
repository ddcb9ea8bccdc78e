from __future__ import annotations

import asyncpg
import pytest

from closeloop_devstack import infra
from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage

pytestmark = pytest.mark.integration


async def test_broker_accepts_acknowledged_writes(kafka_settings: KafkaSettings) -> None:
    producer = EventProducer(kafka_settings, client_id="test-infra")
    await producer.start()
    try:
        assert await producer.ping()
        await producer.send(OutgoingMessage("closeloop.feedback.received.v1", b"{}", key=b"k"))
    finally:
        await producer.stop()


async def test_database_is_fresh_and_writable(database_url: str) -> None:
    connection = await asyncpg.connect(infra._asyncpg_dsn(database_url))
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await connection.close()
