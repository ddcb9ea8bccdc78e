"""Migrations and the operator's bootstrap admin key, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from closeloop_gateway.auth import Scope
from closeloop_gateway.migrate import alembic_config, upgrade
from tests.gateway.support import FakeUpstream, bearer, gateway_settings, running_gateway

pytestmark = pytest.mark.integration


async def _rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def _cli(database_url: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, "CLOSELOOP_DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def test_migrations_are_idempotent_reversible_and_stay_in_their_schema(
    database_url: str,
) -> None:
    # The CLI devstack runs, then the in-process API from inside a running event loop.
    await _cli(database_url, sys.executable, "-m", "closeloop_gateway", "migrate")
    upgrade(database_url)
    tables = await _rows(
        database_url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    assert tables == [
        ("gateway", "access_audit"),
        ("gateway", "alembic_version"),
        ("gateway", "api_key"),
    ]
    assert await _rows(database_url, "SELECT version_num FROM gateway.alembic_version") == [
        ("0002",)
    ]
    # Alembic's own commands (as `alembic -c services/gateway/alembic.ini ...` runs them).
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _rows(database_url, "SELECT to_regclass('gateway.api_key')") == [(None,)]
    assert await _rows(database_url, "SELECT to_regclass('gateway.access_audit')") == [(None,)]
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _rows(database_url, "SELECT count(*) FROM gateway.api_key") == [(0,)]


async def test_bootstrap_key_is_upserted_rotated_and_never_resurrected(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    first, second = ("clk_" + secrets.token_urlsafe(32) for _ in range(2))
    settings = gateway_settings(ingest.url, alerts.url, bootstrap_admin_key=first)
    for _ in range(2):  # a restart with the same key changes nothing
        async with running_gateway(settings, migrated_database) as gateway:
            listed = await gateway.get("/v1/admin/api-keys", headers=bearer(first))
            assert listed.status_code == 200
            [key] = listed.json()["items"]
            assert key["name"] == "bootstrap-admin"
            assert key["scopes"] == sorted(scope.value for scope in Scope)
            assert key["prefix"] == first[:12]

    rotated = gateway_settings(ingest.url, alerts.url, bootstrap_admin_key=second)
    async with running_gateway(rotated, migrated_database) as gateway:
        assert (await gateway.get("/v1/admin/api-keys", headers=bearer(first))).status_code == 401
        listed = await gateway.get("/v1/admin/api-keys", headers=bearer(second))
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [item["revoked_at"] is not None for item in items] == [True, False]
        # The operator revokes the bootstrap key once real admin keys exist...
        response = await gateway.delete(
            f"/v1/admin/api-keys/{items[1]['id']}", headers=bearer(second)
        )
        assert response.status_code == 204

    # ...and a restart with the variable still set does not bring it back.
    async with running_gateway(rotated, migrated_database) as gateway:
        assert (await gateway.get("/v1/admin/api-keys", headers=bearer(second))).status_code == 401
    assert await _rows(
        migrated_database, "SELECT count(*) FROM gateway.api_key WHERE revoked_at IS NULL"
    ) == [(0,)]
