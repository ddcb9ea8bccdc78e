"""Outages of what the services depend on: PostgreSQL, the owner's endpoint, the broker.

Each test runs the whole stack as processes on loopback, takes one dependency
away for a while under load, brings it back, and then counts as the crash
test does: nothing accepted is lost, nothing is duplicated, every alert
reached its owner. Counts go to ``test-artifacts/reliability-<name>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path

import httpx
import orjson
import pytest

from closeloop_devstack import infra
from closeloop_shared.contracts.feedback import Channel, feedback_id
from closeloop_shared.kafka.admin import ensure_topics
from tests.reliability.support import (
    OwnerReceiver,
    build_plan,
    count,
    record_count,
    running_stack,
    send_all,
    status_of,
    wait_drained,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

ALERTS_DLQ = "closeloop.feedback.scored.v1.closeloop-alerts.dlq"
SENTIMENT_DLQ = "closeloop.feedback.received.v1.closeloop-sentiment.dlq"


@pytest.mark.timeout(400)
async def test_database_outage_pauses_the_consumer_and_loses_nothing(tmp_path: Path) -> None:
    """PostgreSQL stops under load: alerts retries without committing or dead-lettering."""
    postgres = await asyncio.to_thread(infra.start_embedded_postgres, tmp_path / "pg")
    receiver = OwnerReceiver()
    receiver.start()
    try:
        # A long key cache lets canonical batches through the gateway while its database is away.
        env = {"CLOSELOOP_GATEWAY_KEY_CACHE_TTL_S": "3600"}
        async with running_stack(tmp_path / "stack", postgres.url, receiver, env) as stack:
            plan = build_plan(
                stack.url("gateway"),
                stack.config.admin_key,
                stack.config.provider_secrets,
                4000,
                webhooks_per_provider=5,
                singles=20,
            )
            warm_up, rest = plan.requests[:1], plan.requests[1:]
            plan.requests = warm_up
            await send_all(plan)  # the key is cached now
            plan.requests = warm_up + rest

            await asyncio.to_thread(postgres.stop)
            outage_started = time.monotonic()
            sending = asyncio.create_task(send_all(plan, items_per_s=400))
            await asyncio.sleep(8)
            alerts_ready_during = await status_of(stack.url("alerts") + "/readyz")
            alerts_alive_during = await status_of(stack.url("alerts") + "/healthz")
            await asyncio.sleep(7)
            await asyncio.to_thread(infra.start_embedded_postgres, postgres.data_dir, postgres.port)
            outage_s = time.monotonic() - outage_started
            stats = await sending
            stored = await wait_drained(plan, stack.database_url, receiver, timeout_s=120)
            dead_letters = await record_count(stack.bootstrap_servers, ALERTS_DLQ)
            counts = count(
                plan,
                stored,
                receiver.snapshot(),
                outage_seconds=round(outage_s, 1),
                alerts_readyz_during_outage=alerts_ready_during,
                alerts_healthz_during_outage=alerts_alive_during,
                alerts_dead_letters=dead_letters,
                statuses=stats.statuses,
            )
            counts.write("database-outage")
            assert alerts_ready_during == 503
            assert alerts_alive_during == 200, "a database outage is not a reason to restart"
            assert dead_letters == 0, "good messages were dead-lettered during the outage"
            assert stats.gave_up == 0
            assert counts.accepted_items == counts.sent_items
            counts.assert_exact()
    finally:
        receiver.stop()
        await asyncio.to_thread(_stop_quietly, postgres)


def _stop_quietly(postgres: infra.EmbeddedPostgres) -> None:
    with contextlib.suppress(RuntimeError):
        postgres.stop()
    # The data may have been relocated out of tmp_path (the server user must reach it).
    shutil.rmtree(postgres.data_dir, ignore_errors=True)


@pytest.mark.timeout(300)
async def test_owner_endpoint_down_is_retried_until_delivered(
    postgres_server_url: str, tmp_path: Path
) -> None:
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            plan = build_plan(
                stack.url("gateway"),
                stack.config.admin_key,
                stack.config.provider_secrets,
                2000,
                webhooks_per_provider=3,
                singles=10,
            )
            receiver.status = 503  # the owner's endpoint is down
            stats = await send_all(plan)
            await asyncio.sleep(10)
            refused_while_down = receiver.refused
            receiver.status = 200
            stored = await wait_drained(plan, stack.database_url, receiver, timeout_s=120)
            counts = count(
                plan,
                stored,
                receiver.snapshot(),
                refused_while_down=refused_while_down,
                statuses=stats.statuses,
            )
            counts.write("owner-down")
            assert refused_while_down > 0
            assert counts.accepted_items == counts.sent_items
            counts.assert_exact()
    finally:
        receiver.stop()


@pytest.mark.timeout(400)
async def test_broker_restart_services_reconnect_and_ingest_answers_503_meanwhile(
    postgres_server_url: str, tmp_path: Path
) -> None:
    """Tansu keeps topics in memory: after its restart the operator recreates them."""
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            assert stack.broker is not None
            plan = build_plan(
                stack.url("gateway"),
                stack.config.admin_key,
                stack.config.provider_secrets,
                3000,
                webhooks_per_provider=3,
                singles=10,
            )
            before, after = (
                plan.requests[: len(plan.requests) // 2],
                plan.requests[len(plan.requests) // 2 :],
            )
            plan.requests = before
            await send_all(plan)
            await wait_drained(plan, stack.database_url, receiver, timeout_s=120)
            plan.requests = before + after

            stack.broker.kill()
            await asyncio.sleep(3)
            probe = orjson.dumps(
                {
                    "channel": "app",
                    "external_id": "during-broker-outage",
                    "text": "hello",
                    "occurred_at": "2026-01-01T00:00:00Z",
                }
            )
            async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as client:
                started = time.monotonic()
                response = await client.post(
                    "/v1/feedback",
                    content=probe,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {stack.config.admin_key}",
                    },
                )
                answer_s = time.monotonic() - started
            readiness = {
                service: await status_of(stack.url(service) + "/readyz")
                for service in ("ingest", "sentiment", "alerts")
            }
            stack.broker = infra.start_broker(
                stack.config.ports.broker, stack.log_dir / "broker.log"
            )
            await ensure_topics(stack.kafka_settings())  # what an operator does after the restart
            reconnect_started = time.monotonic()
            await stack.wait_ready(120, ("ingest", "sentiment", "alerts"))
            reconnect_s = time.monotonic() - reconnect_started
            running = {
                name: stack.processes[name].running for name in ("ingest", "sentiment", "alerts")
            }

            stats = await send_all(plan)
            stored = await wait_drained(plan, stack.database_url, receiver, timeout_s=150)
            probe_id = str(feedback_id(Channel.APP, "during-broker-outage"))
            counts = count(
                plan,
                stored,
                receiver.snapshot(),
                # A 503 promises nothing either way: the producer may still deliver its
                # buffered write once the broker is back (the client's retry is the same id).
                maybe_stored=frozenset({probe_id}),
                probe_stored_after_503=probe_id in stored.feedback,
                outage_status=response.status_code,
                outage_retry_after=response.headers.get("retry-after"),
                outage_answer_seconds=round(answer_s, 2),
                readiness_during_outage=readiness,
                reconnect_seconds=round(reconnect_s, 1),
                statuses=stats.statuses,
            )
            counts.write("broker-restart")
            assert response.status_code == 503, response.text
            assert response.headers.get("retry-after")
            assert answer_s < 10, "ingest must answer, not hang, while the broker is away"
            assert all(status == 503 for status in readiness.values()), readiness
            assert all(running.values()), "the services must reconnect on their own"
            assert counts.accepted_items == counts.sent_items
            counts.assert_exact()
    finally:
        receiver.stop()
