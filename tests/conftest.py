"""Session fixtures: a real Kafka-protocol broker and a real PostgreSQL, started once per run.

Integration tests never mock the broker or the database. The broker is a fresh
Tansu per test session on a free loopback port; the database is a fresh one
per test module on the machine's PostgreSQL (or an embedded cluster).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from closeloop_devstack import infra
from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.admin import ensure_topics

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def broker() -> Iterator[infra.Broker]:
    ARTIFACTS.mkdir(exist_ok=True)
    started = infra.start_broker(log_path=ARTIFACTS / "tansu.log")
    yield started
    started.stop()


@pytest.fixture(scope="session")
async def kafka_settings(broker: infra.Broker) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        topic_partitions=3,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="session")
async def postgres_server_url() -> AsyncIterator[str]:
    """URL of a PostgreSQL server that answers (database part: ``postgres``)."""
    url = os.environ.get(
        "CLOSELOOP_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    resolved, embedded = await infra.ensure_postgres(url, ARTIFACTS / "embedded-postgres")
    yield resolved
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="module")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test module, dropped afterwards."""
    url = infra.with_database(postgres_server_url, f"closeloop_test_{uuid.uuid4().hex[:12]}")
    await infra.create_database(url)
    yield url
    await infra.drop_database(url)
