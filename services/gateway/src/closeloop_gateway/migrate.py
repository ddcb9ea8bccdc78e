"""Database migrations (Alembic, in services/gateway/migrations) run from code or the CLI.

``closeloop-gateway migrate`` (devstack, deployments) and :func:`upgrade` (tests) bring
the ``gateway`` schema to the newest revision; running it twice does nothing the second time.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# The migrations live beside the package in the service directory (services/gateway),
# which the images copy whole and install in place.
SERVICE_DIR = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = SERVICE_DIR / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config(str(SERVICE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: ini options interpolate '%' in passwords.
    config.attributes["database_url"] = database_url
    return config


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Upgrade on a connection of the running event loop (env.py reuses it)."""
    config = alembic_config(database_url)
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:

            def run(sync_connection: Connection) -> None:
                config.attributes["connection"] = sync_connection
                command.upgrade(config, revision)

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade from synchronous code; from inside a running loop it runs on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(upgrade_async(database_url, revision))
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(upgrade_async(database_url, revision))
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run, name="closeloop-gateway-migrate")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
