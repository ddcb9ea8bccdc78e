"""Fixtures for the ingest tests: the real app in-process, with a fake producer for unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.ingest.support import FakeProducer, ingest_settings, running_app


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def client(producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(ingest_settings(), producer) as http:
        yield http
