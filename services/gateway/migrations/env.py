"""Alembic environment: async engine, version table and all objects in schema "gateway"."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from closeloop_gateway.models import SCHEMA, Base
from closeloop_shared.config import DatabaseSettings

config = context.config
target_metadata = Base.metadata

# Replicas (or a replica and an operator) migrating at once take turns.
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('closeloop_gateway.migrate'))")


def _database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else DatabaseSettings().url


def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    # Autogenerate compares only this service's schema, never the other services'.
    return type_ != "schema" or name == SCHEMA


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=_include_name,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        connection.execute(_LOCK)
        # Before Alembic looks for its version table, which lives in this schema.
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_database_url(), literal_binds=True)
    with context.begin_transaction():
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        context.run_migrations()
else:
    shared = config.attributes.get("connection")
    if shared is not None:
        _run(shared)
    else:
        asyncio.run(_run_async())
