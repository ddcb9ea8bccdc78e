"""``closeloop-gateway [serve]`` runs the gateway; ``closeloop-gateway migrate`` its migrations."""

from __future__ import annotations

import argparse

import uvicorn

from closeloop_gateway.app import create_app
from closeloop_gateway.config import GatewaySettings
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.logging import configure_logging, get_logger

log = get_logger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="closeloop-gateway", description="Closeloop's public API gateway."
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=("serve", "migrate"),
        help="serve (default): run the HTTP server; migrate: upgrade the gateway schema",
    )
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    database = DatabaseSettings()
    configure_logging("gateway", settings.log_level)
    if args.command == "migrate":
        # Imported here: Alembic is not needed (nor loaded) by the server.
        from closeloop_gateway.migrate import upgrade

        upgrade(database.url)
        log.info("gateway_migrated")
        return
    uvicorn.run(
        create_app(settings, database),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # Behind a trusted proxy, take the client address and scheme from its headers.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # The public edge does not advertise its server software.
        server_header=False,
    )


if __name__ == "__main__":
    main()
