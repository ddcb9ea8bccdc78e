"""Gateway migrations on a database of this module's own (they drop and rebuild the schema)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from closeloop_gateway.auth import hash_key
from closeloop_gateway.migrate import upgrade_async

pytestmark = pytest.mark.integration


async def test_old_keys_get_a_role_by_their_scopes_when_migrating(database_url: str) -> None:
    # A database of its own at revision 0001 with keys from before roles.
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS gateway CASCADE"))
        await upgrade_async(database_url, "0001")
        async with engine.begin() as connection:
            for name, scopes in (
                ("crm", ["feedback:write"]),
                ("desk", ["alerts:read", "alerts:write"]),
                ("ops", ["admin"]),
            ):
                await connection.execute(
                    text(
                        "INSERT INTO gateway.api_key (id, name, prefix, hash, scopes) "
                        "VALUES (gen_random_uuid(), :name, 'clk_', :hash, "
                        ":scopes)"
                    ),
                    {"name": name, "hash": hash_key(name), "scopes": scopes},
                )
        await upgrade_async(database_url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT name, role FROM gateway.api_key"))).all()
        roles = {str(name): str(role) for name, role in rows}
        assert roles == {"crm": "channel", "desk": "admin", "ops": "admin"}
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS gateway CASCADE"))
        await engine.dispose()
