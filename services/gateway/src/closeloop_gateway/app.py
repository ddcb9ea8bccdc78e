"""The gateway's FastAPI app: the only public entry to Closeloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from closeloop_gateway import api_keys, audit, proxy
from closeloop_gateway.api_keys import ApiKeyRepository
from closeloop_gateway.audit import AuditLog
from closeloop_gateway.auth import Guard, KeyCache
from closeloop_gateway.config import GatewaySettings
from closeloop_gateway.console import install_console
from closeloop_gateway.console.config import ConsoleSettings
from closeloop_gateway.errors import ProblemError, problem_error_handler
from closeloop_gateway.limits import BodyLimits, RateLimiter
from closeloop_gateway.openapi import DESCRIPTION, GatewayAPI
from closeloop_gateway.proxy import ALERTS, INGEST, Proxy, Upstream
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.db.engine import create_engine, ping
from closeloop_shared.http.observability import PROMETHEUS_ONLY, install_observability
from closeloop_shared.logging import get_logger

log = get_logger(__name__)


def _version() -> str:
    try:
        return metadata.version("closeloop-gateway")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def _client_disconnected(_request: Request, _exc: Exception) -> Response:
    # The client left while sending its body: nobody will read an answer, and it is not
    # an error of ours worth a stack trace.
    return Response(status_code=400)


def create_app(
    settings: GatewaySettings | None = None,
    database: DatabaseSettings | None = None,
    console: ConsoleSettings | None = None,
) -> FastAPI:
    settings = settings or GatewaySettings()
    database = database or DatabaseSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database, application_name="closeloop-gateway")
        upstreams = {
            INGEST: Upstream(INGEST, settings.ingest_url, settings),
            ALERTS: Upstream(ALERTS, settings.alerts_url, settings),
        }
        access_audit = AuditLog(engine)
        try:
            repository = ApiKeyRepository(engine)
            if settings.bootstrap_admin_key is not None:
                await repository.ensure_bootstrap(settings.bootstrap_admin_key.get_secret_value())
            limiter = (
                RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
                if settings.rate_limit_per_s > 0
                else None
            )
            guard = Guard(
                KeyCache(
                    repository.find_active,
                    ttl_s=settings.key_cache_ttl_s,
                    max_entries=settings.key_cache_max_entries,
                ),
                limiter,
                retry_after_s=settings.upstream_retry_after_s,
            )
            limits = BodyLimits(settings.max_body_bytes, settings.max_large_body_bytes)
            app.state.settings = settings
            app.state.engine = engine
            app.state.api_keys = repository
            app.state.guard = guard
            app.state.body_limits = limits
            app.state.proxy = Proxy(upstreams, guard, limits, settings)
            app.state.audit = access_audit
            access_audit.start()
            log.info(
                "gateway_started",
                ingest_url=settings.ingest_url,
                alerts_url=settings.alerts_url,
                key_cache_ttl_s=settings.key_cache_ttl_s,
            )
            yield
        finally:
            await access_audit.close()
            for upstream in upstreams.values():
                await upstream.aclose()
            await engine.dispose()

    app = GatewayAPI(
        telemetry=PROMETHEUS_ONLY,
        title="Closeloop API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    async def database_ready() -> bool:
        try:
            return await asyncio.wait_for(ping(app.state.engine), settings.readiness_timeout_s)
        except TimeoutError:
            return False

    async def ingest_ready() -> bool:
        gateway_proxy: Proxy = app.state.proxy
        return await gateway_proxy.upstreams[INGEST].healthy()

    async def alerts_ready() -> bool:
        gateway_proxy: Proxy = app.state.proxy
        return await gateway_proxy.upstreams[ALERTS].healthy()

    install_observability(
        app,
        service="gateway",
        readiness={"database": database_ready, "ingest": ingest_ready, "alerts": alerts_ready},
        version=_version(),
    )
    app.add_exception_handler(ProblemError, problem_error_handler)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    proxy.add_ingest_routes(app)
    proxy.add_alerts_routes(app)
    api_keys.add_routes(app)
    audit.add_routes(app)
    install_console(app, console)
    return app
