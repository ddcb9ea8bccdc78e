"""Database pool usage is exported per pool (application name) at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from closeloop_shared.config import DatabaseSettings
from closeloop_shared.db.engine import create_engine

pytestmark = pytest.mark.integration


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_pool_usage_is_exported_while_connections_are_checked_out(database_url: str) -> None:
    engine = create_engine(
        DatabaseSettings(url=database_url, pool_size=3, max_overflow=2), "closeloop-test-pool"
    )
    try:
        before = _sample("closeloop_db_pool_checkouts_total", pool="closeloop-test-pool") or 0
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            assert (
                _sample("closeloop_db_pool_connections", pool="closeloop-test-pool", state="in_use")
                == 1
            )
        assert (
            _sample("closeloop_db_pool_connections", pool="closeloop-test-pool", state="in_use")
            == 0
        )
        assert (
            _sample("closeloop_db_pool_connections", pool="closeloop-test-pool", state="idle") == 1
        )
        assert _sample("closeloop_db_pool_size_connections", pool="closeloop-test-pool") == 3
        assert _sample("closeloop_db_pool_max_connections", pool="closeloop-test-pool") == 5
        after = _sample("closeloop_db_pool_checkouts_total", pool="closeloop-test-pool")
        assert after is not None
        assert after >= before + 1
    finally:
        await engine.dispose()
