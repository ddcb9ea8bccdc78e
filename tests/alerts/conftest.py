"""Fixtures of the alerts tests: a migrated database per module, a local webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.migrate import upgrade_async
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.db.engine import create_engine, create_sessionmaker
from tests.alerts.support import WebhookReceiver


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
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()
