"""Alembic environment of the alerts service: async engine, everything in schema ``alerts``."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from closeloop_alerts.models import SCHEMA, Base
from closeloop_shared.config import DatabaseSettings

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Serialises concurrent `migrate` runs (several replicas starting at once).
MIGRATION_LOCK_KEY = 0x636C_616C_7274_0002


def _include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    # Other services share the database; only this schema is ours to compare.
    if type_ == "schema":
        return name == SCHEMA
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=_include_name,
        compare_type=True,
    )


def do_run_migrations(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # The version table lives in the schema, so the schema must exist before Alembic looks.
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = config.attributes.get("database_url") or DatabaseSettings().url
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        # One outer transaction: PostgreSQL DDL is transactional, so a failed migration
        # leaves nothing half-applied.
        async with engine.begin() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.attributes.get("database_url") or DatabaseSettings().url,
        target_metadata=target_metadata,
        version_table_schema=SCHEMA,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
