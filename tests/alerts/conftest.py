"""Fixtures of the alerts tests: a migrated database per module, a local webhook receiver."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import pii
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.migrate import upgrade_async
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.db.engine import create_engine, create_sessionmaker
from tests.alerts.support import WebhookReceiver

# Customer data is stored encrypted: the apps these tests start read their keys from the
# environment, as in production. Fresh keys per run, never a fixed "test key".
os.environ.setdefault("CLOSELOOP_ALERTS_PII_KEYS", f"test-1:{pii.new_key()}")
os.environ.setdefault("CLOSELOOP_ALERTS_PII_INDEX_KEY", pii.new_key())


@pytest.fixture(scope="module")
async def alerts_database_url(database_url: str) -> str:
    """A fresh database of this module with the alerts schema migrated to head."""
    await upgrade_async(database_url)
    return database_url


@pytest.fixture(scope="module")
async def sessionmaker(
    alerts_database_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(
        DatabaseSettings(CLOSELOOP_DATABASE_URL=alerts_database_url), "closeloop-alerts-tests"
    )
    yield pii.bind(create_sessionmaker(engine), AlertsSettings().pii_keyring())
    await engine.dispose()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()
