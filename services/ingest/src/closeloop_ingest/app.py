"""The ingest FastAPI app: routes, observability and the Kafka producer's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import metadata
from typing import Protocol

from fastapi import FastAPI

from closeloop_ingest.config import IngestSettings
from closeloop_ingest.openapi import add_documented_models
from closeloop_ingest.publisher import FeedbackPublisher, MessageSink
from closeloop_ingest.replay import SeenTokens
from closeloop_ingest.routes import IngestService, router
from closeloop_shared.config import KafkaSettings
from closeloop_shared.http.observability import PROMETHEUS_ONLY, install_observability
from closeloop_shared.kafka.producer import EventProducer
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

SERVICE = "ingest"
# Pause after an unexpected (non-Kafka) error while connecting, before trying again.
_CONNECT_RETRY_PAUSE_S = 5.0


class ManagedProducer(MessageSink, Protocol):
    """The producer's lifecycle as the app uses it; :class:`EventProducer` in production."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ping(self, timeout_s: float = 2.0) -> bool: ...


async def _connect_forever(producer: ManagedProducer) -> None:
    """Connect the producer in the background, however long the broker takes to appear.

    The service starts and answers without a broker: publishing then fails fast
    with 503 + Retry-After, and /readyz says not ready, until this succeeds.
    """
    while True:
        try:
            await producer.start()  # retries KafkaErrors itself, with backoff
        except Exception as error:
            log.error("kafka_producer_start_failed", error=type(error).__name__)
            await asyncio.sleep(_CONNECT_RETRY_PAUSE_S)
            continue
        log.info("kafka_producer_connected")
        return


@dataclass
class _Runtime:
    """What the lifespan creates and the readiness check needs to see."""

    producer: ManagedProducer | None = None


def _version() -> str:
    try:
        return metadata.version("closeloop-ingest")
    except metadata.PackageNotFoundError:
        return "unknown"


def create_app(
    settings: IngestSettings | None = None,
    kafka: KafkaSettings | None = None,
    *,
    producer: ManagedProducer | None = None,
) -> FastAPI:
    """The ingest app. ``producer`` replaces the Kafka producer (tests pass a fake)."""
    settings = settings if settings is not None else IngestSettings()
    kafka = kafka if kafka is not None else KafkaSettings()
    runtime = _Runtime()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = producer or EventProducer(
            kafka,
            client_id=f"{kafka.client_id_prefix}-ingest",
            ack_timeout_s=settings.publish_ack_timeout_s,
        )
        runtime.producer = active
        connecting = asyncio.create_task(_connect_forever(active), name="kafka-producer-connect")
        app.state.ingest = IngestService(
            settings, FeedbackPublisher(active), SeenTokens(settings.replay_cache_size)
        )
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            await active.stop()
            runtime.producer = None

    async def broker_ready() -> bool:
        return runtime.producer is not None and await runtime.producer.ping()

    app = FastAPI(
        telemetry=PROMETHEUS_ONLY,
        title="Closeloop ingest",
        summary="Channel webhooks in, one canonical feedback event out onto Kafka.",
        version=_version(),
        lifespan=lifespan,
    )
    app.include_router(router)
    install_observability(
        app, service=SERVICE, readiness={"broker": broker_ready}, version=_version()
    )
    add_documented_models(app)
    return app
