from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from closeloop_gateway.migrate import upgrade_async
from tests.gateway.support import FakeUpstream, fake_upstream, gateway_settings, running_gateway


@pytest.fixture(scope="module")
async def migrated_database(database_url: str) -> str:
    await upgrade_async(database_url)
    return database_url


@pytest.fixture(scope="module")
async def ingest() -> AsyncIterator[FakeUpstream]:
    async with fake_upstream("ingest") as upstream:
        yield upstream


@pytest.fixture(scope="module")
async def alerts() -> AsyncIterator[FakeUpstream]:
    async with fake_upstream("alerts") as upstream:
        yield upstream


@pytest.fixture(scope="module")
async def gateway(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with a real database, in front of the two fake upstreams."""
    settings = gateway_settings(ingest.url, alerts.url)
    async with running_gateway(settings, migrated_database) as client:
        yield client
