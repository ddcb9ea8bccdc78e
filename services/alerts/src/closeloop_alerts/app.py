"""The alerts service app: support API plus the consumer, dispatcher and relay it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from closeloop_alerts import feedback_list, kpis, pii, privacy_api, related, repository
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.delivery import DeliveryDispatcher, RetryPolicy, make_client
from closeloop_alerts.metrics import (
    ALERTS_BREACHED,
    ALERTS_OPEN,
    KPI_GAUGES,
    KPI_WINDOW_S,
    OUTBOX_PENDING,
    TARGETS_UNHEALTHY,
)
from closeloop_alerts.notifiers import SmtpSettings
from closeloop_alerts.outbound import Allowlist
from closeloop_alerts.outbox import OutboxRelay
from closeloop_alerts.owners import OwnerStore
from closeloop_alerts.rescores import RescoreIntake, decode_rescore
from closeloop_alerts.rescores import router as rescores_router
from closeloop_alerts.routes import ApiContext, admin, router
from closeloop_alerts.routing import (
    Router,
    RoutingConfig,
    RoutingState,
    default_routing,
    load_routing,
)
from closeloop_alerts.service import AlertIntake, Lifecycle, decode_event
from closeloop_alerts.sla import SlaMonitor
from closeloop_alerts.spikes import SpikeDetector
from closeloop_shared.config import DatabaseSettings, KafkaSettings
from closeloop_shared.contracts.alerts import AlertPriority
from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.db.engine import (
    DATABASE_UNAVAILABLE_ERRORS,
    create_engine,
    create_sessionmaker,
    ping,
)
from closeloop_shared.events import FeedbackScoredEvent, SentimentRescoredEvent, Topic, utcnow
from closeloop_shared.http.observability import PROMETHEUS_ONLY, install_observability
from closeloop_shared.kafka.consumer import BatchConsumer
from closeloop_shared.kafka.producer import EventProducer
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

SERVICE = "closeloop-alerts"  # consumer group, client id
# The `service` label on metrics and logs: the bare name, as every service uses.
SERVICE_LABEL = "alerts"

# How long shutdown waits for in-flight webhook requests before cancelling them (a
# cancelled one is retried by whichever replica sees its lease expire).
DRAIN_TIMEOUT_S = 5.0


def load_routing_config(settings: AlertsSettings) -> RoutingConfig:
    if settings.routing_file is None:
        log.warning("routing_file_not_set", hint="set CLOSELOOP_ROUTING_FILE")
        return default_routing()
    return load_routing(settings.routing_file)


@dataclass
class Runtime:
    """Everything the lifespan started; on ``app.state.runtime`` once the app runs."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    routing: RoutingState
    producer: EventProducer
    dispatcher: DeliveryDispatcher
    relay: OutboxRelay
    intake: AlertIntake
    owners: OwnerStore
    consumer: BatchConsumer[FeedbackScoredEvent] | None = None
    rescore_consumer: BatchConsumer[SentimentRescoredEvent] | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def alive(self) -> bool:
        consumers_ok = all(
            consumer is not None and consumer.healthy
            for consumer in (self.consumer, self.rescore_consumer)
        )
        return consumers_ok and all(not task.done() for task in self.tasks.values())


async def refresh_gauges(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        open_counts = await repository.count_open_by_priority_and_owner(session)
        breached = await repository.count_breached_by_priority(session)
        pending = await repository.count_outbox_pending(session)
        unhealthy = len(await repository.unhealthy_targets(session))
    # Reset first so an owner whose last open alert was acknowledged drops back to 0.
    ALERTS_OPEN.clear()
    for (priority, owner), count in open_counts.items():
        ALERTS_OPEN.labels(priority, owner).set(count)
    for priority in AlertPriority:
        ALERTS_BREACHED.labels(priority.value).set(breached.get(priority.value, 0))
    OUTBOX_PENDING.set(pending)
    TARGETS_UNHEALTHY.set(unhealthy)


async def _every(interval_s: float, action: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("periodic_task_failed", task=name, error=type(error).__name__)
        await asyncio.sleep(interval_s)


async def refresh_kpi_gauges(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    end = utcnow()
    async with sessionmaker() as session:
        items, alerts = await kpis.load(session, end - timedelta(seconds=KPI_WINDOW_S), end)
    rows = {row["key"]: row for row in kpis.aggregate(items, alerts, "channel")}
    fields = {
        "volume": "volume",
        "negative_share": "negative_share",
        "nps": "nps",
        "csat": "csat",
        "ces": "ces",
        "alerts": "alerts",
        "mtta_seconds": "mtta_s",
        "mttr_seconds": "mttr_s",
        "sla_compliance": "sla_compliance",
    }
    for channel in Channel:
        row = rows.get(channel.value, {})
        for gauge, field_name in fields.items():
            value = row.get(field_name)
            KPI_GAUGES[gauge].labels(channel.value).set(float(value) if value is not None else 0.0)


def _start(runtime: Runtime, name: str, coroutine: Awaitable[None]) -> None:
    async def guarded() -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            # The loops handle their own errors; reaching here is a bug. /healthz turns
            # 503 so the orchestrator restarts the process.
            log.exception("background_task_crashed", task=name)
            raise

    runtime.tasks[name] = asyncio.create_task(guarded(), name=f"{SERVICE}:{name}")


async def _stop_tasks(runtime: Runtime) -> None:
    for task in runtime.tasks.values():
        task.cancel()
    await asyncio.gather(*runtime.tasks.values(), return_exceptions=True)
    await runtime.dispatcher.drain(DRAIN_TIMEOUT_S)


def create_app(
    settings: AlertsSettings | None = None,
    kafka: KafkaSettings | None = None,
    database: DatabaseSettings | None = None,
) -> FastAPI:
    settings = settings or AlertsSettings()
    kafka = kafka or KafkaSettings()
    database = database or DatabaseSettings()
    holder: dict[str, Runtime] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A bad routing file or missing PII keys stop the start here, before anything connects.
        routing = RoutingState(Router(load_routing_config(settings)))
        keyring = settings.pii_keyring()
        engine = create_engine(database, application_name=SERVICE)
        sessionmaker = pii.bind(create_sessionmaker(engine), keyring)
        producer = EventProducer(kafka, client_id=SERVICE)
        client = make_client(settings.delivery_timeout_s)
        password = settings.smtp_password
        smtp = SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
        )
        dispatcher = DeliveryDispatcher(
            sessionmaker,
            routing,
            client,
            RetryPolicy(
                schedule_s=settings.delivery_schedule_s,
                jitter=settings.delivery_jitter,
                max_retry_after_s=settings.delivery_max_retry_after_s,
            ),
            concurrency=settings.delivery_concurrency,
            poll_interval_s=settings.delivery_poll_interval_s,
            lease_s=settings.delivery_lease_s,
            allowlist=settings.outbound_allowlist,
            smtp=smtp,
            unhealthy_after=settings.target_unhealthy_after,
            timeout_s=settings.delivery_timeout_s,
        )
        relay = OutboxRelay(
            sessionmaker,
            producer,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            retention_s=settings.outbox_retention_s,
        )
        intake = AlertIntake(
            sessionmaker,
            routing,
            on_deliveries=dispatcher.wake,
            on_outbox=relay.wake,
            first_delay_s=settings.delivery_schedule_s[0],
        )
        owners = OwnerStore(sessionmaker, routing, settings.routing_file)
        lifecycle = Lifecycle(
            sessionmaker,
            routing,
            on_outbox=relay.wake,
            on_deliveries=dispatcher.wake,
            first_delay_s=settings.delivery_schedule_s[0],
        )
        sla = SlaMonitor(
            sessionmaker,
            routing,
            poll_interval_s=settings.sla_poll_interval_s,
            on_deliveries=dispatcher.wake,
            on_outbox=relay.wake,
        )
        runtime = Runtime(
            engine, sessionmaker, routing, producer, dispatcher, relay, intake, owners
        )
        try:
            try:
                await owners.start(routing.router.config)
            except Exception as error:
                # The database may come later; the reload loop seeds and loads then.
                log.warning("owners_not_loaded", error=type(error).__name__)
            await producer.start()
            _start(runtime, "owners", owners.run(settings.routing_reload_interval_s))
            _start(runtime, "sla", sla.run())
            _start(
                runtime,
                "spikes",
                SpikeDetector(
                    sessionmaker,
                    routing,
                    interval_s=settings.spike_interval_s,
                    on_deliveries=dispatcher.wake,
                    on_outbox=relay.wake,
                ).run(),
            )
            _start(runtime, "dispatcher", dispatcher.run())
            _start(runtime, "relay", relay.run())
            _start(
                runtime,
                "gauges",
                _every(
                    settings.gauge_refresh_interval_s,
                    lambda: refresh_gauges(sessionmaker),
                    "gauge_refresh",
                ),
            )
            _start(
                runtime,
                "kpi_gauges",
                _every(
                    settings.kpi_refresh_interval_s,
                    lambda: refresh_kpi_gauges(sessionmaker),
                    "kpi_gauge_refresh",
                ),
            )
            runtime.consumer = BatchConsumer(
                settings=kafka,
                topic=Topic.FEEDBACK_SCORED.value,
                group_id=settings.consumer_group,
                decode=decode_event,
                handle=intake.handle,
                producer=producer,
                transient_errors=DATABASE_UNAVAILABLE_ERRORS,
                client_id=SERVICE,
            )
            await runtime.consumer.start()
            # Its own group: a re-score of a year of feedback never delays the live consumer.
            runtime.rescore_consumer = BatchConsumer(
                settings=kafka,
                topic=Topic.SENTIMENT_RESCORED.value,
                group_id=settings.rescore_consumer_group,
                decode=decode_rescore,
                handle=RescoreIntake(sessionmaker).handle,
                producer=producer,
                transient_errors=DATABASE_UNAVAILABLE_ERRORS,
                client_id=f"{SERVICE}-rescores",
            )
            await runtime.rescore_consumer.start()
            holder["runtime"] = runtime
            app.state.runtime = runtime
            app.state.api = ApiContext(
                sessionmaker=sessionmaker,
                wake_outbox=relay.wake,
                lifecycle=lifecycle,
                owners=owners,
                outbound_allowlist=Allowlist.parse(settings.outbound_allowlist),
            )
            log.info("alerts_started", owners=len(routing.router.config.owners))
            yield
        finally:
            holder.pop("runtime", None)
            # Stop taking new work first, then finish the in-flight batch and requests.
            if runtime.consumer is not None:
                await runtime.consumer.stop()
            if runtime.rescore_consumer is not None:
                await runtime.rescore_consumer.stop()
            await _stop_tasks(runtime)
            await producer.stop()
            await client.aclose()
            await engine.dispose()

    app = FastAPI(
        telemetry=PROMETHEUS_ONLY,
        title="Closeloop alerts",
        version="0.1.0",
        description="Routes negative feedback to its owner, notifies them, tracks each alert.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(admin)
    app.include_router(privacy_api.router)
    app.include_router(related.router)
    app.include_router(feedback_list.router)
    app.include_router(rescores_router)

    async def database_ready() -> bool:
        runtime = holder.get("runtime")
        return runtime is not None and await ping(runtime.engine)

    async def broker_ready() -> bool:
        runtime = holder.get("runtime")
        return runtime is not None and await runtime.producer.ping()

    def alive() -> bool:
        runtime = holder.get("runtime")
        return runtime is not None and runtime.alive()

    install_observability(
        app,
        service=SERVICE_LABEL,
        readiness={"database": database_ready, "broker": broker_ready},
        liveness=alive,
    )
    return app
