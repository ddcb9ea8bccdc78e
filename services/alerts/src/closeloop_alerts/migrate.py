"""Schema migrations (Alembic), callable from code, the CLI and the devstack.

``upgrade(url)`` works from synchronous code and from inside a running event loop (tests,
the devstack), because it runs Alembic on a private loop in a worker thread then.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


def script_location() -> Path:
    """The migrations directory: inside the wheel when installed, beside ``src`` in a checkout."""
    packaged = Path(__file__).resolve().parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def _upgrade_on(connection: Connection, revision: str) -> None:
    config = alembic_config()
    # env.py uses this connection (and its transaction) instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_on, revision)
    finally:
        await engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the ``alerts`` schema of ``database_url`` to ``revision`` (default: latest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade_async(database_url, revision))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts-migrate") as pool:
        pool.submit(asyncio.run, upgrade_async(database_url, revision)).result()
