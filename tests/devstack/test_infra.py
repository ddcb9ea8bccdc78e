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


async def test_embedded_postgres_starts_when_no_server_answers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("embedded")
    base.chmod(0o755)  # the unprivileged server user must reach its data directory
    # Nothing listens on port 1: ensure_postgres must fall back to the embedded cluster.
    url, embedded = await infra.ensure_postgres(
        "postgresql+asyncpg://postgres@127.0.0.1:1/closeloop_embedded", base / "pg"
    )
    assert embedded is not None
    try:
        assert url.endswith("/closeloop_embedded")
        connection = await asyncpg.connect(infra._asyncpg_dsn(url))
        try:
            assert await connection.fetchval("SELECT current_database()") == "closeloop_embedded"
        finally:
            await connection.close()
    finally:
        embedded.stop()
