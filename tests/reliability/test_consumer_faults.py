"""Poison messages, the dead-letter circuit, the replay command and graceful shutdown.

The real services run as processes; messages are written straight to the
topics, as a buggy producer or a bad deploy would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from closeloop_devstack.stack import Stack
from closeloop_shared.contracts.feedback import Channel, FeedbackIn, identify
from closeloop_shared.events import FeedbackReceivedEvent, encode
from tests.reliability.support import (
    ARTIFACTS,
    NEGATIVE_TEXTS,
    POSITIVE_TEXTS,
    OwnerReceiver,
    build_plan,
    committed_total,
    count,
    read_database,
    record_count,
    running_stack,
    send_all,
    status_of,
    topic_records,
    wait_drained,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

RECEIVED = "closeloop.feedback.received.v1"
SCORED = "closeloop.feedback.scored.v1"
SENTIMENT_DLQ = f"{RECEIVED}.closeloop-sentiment.dlq"
HEADER = "x-closeloop-dlq-"


def _event(n: int, negative: bool) -> tuple[str, bytes]:
    item = FeedbackIn(
        channel=Channel.APP,
        external_id=f"direct-{uuid.uuid4().hex}-{n}",
        text=(NEGATIVE_TEXTS if negative else POSITIVE_TEXTS)[n % 5],
        occurred_at=datetime.now(UTC),
    )
    feedback = identify(item, datetime.now(UTC))
    event = FeedbackReceivedEvent(
        id=str(feedback.id),
        source="/tests/reliability",
        subject=str(feedback.id),
        time=feedback.received_at,
        data=feedback,
    )
    return str(feedback.id), encode(event)


async def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if await predicate():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        await asyncio.sleep(0.5)


POISON = [
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b'{"specversion": "1.0"}',
    b'{"specversion": "1.0", "id": "x", "source": "s", "type": "com.closeloop.feedback.received.v1", "time": "2026-01-01T00:00:00Z", "data": {"channel": "fax"}}',
    b"[]",
]


@pytest.mark.timeout(300)
async def test_poison_is_dead_lettered_with_its_origin_and_a_run_of_it_opens_the_circuit(
    postgres_server_url: str, tmp_path: Path
) -> None:
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
            await producer.start()
            try:
                # Poison between good events, all on partition 0: the good ones still flow.
                good: list[str] = []
                origins: set[tuple[int, int]] = set()
                for n in range(40):
                    fid, raw = _event(n, negative=n % 4 == 0)
                    good.append(fid)
                    await producer.send_and_wait(RECEIVED, raw, key=fid.encode(), partition=0)
                    if n % 8 == 0:
                        poison = POISON[(n // 8) % len(POISON)]
                        meta = await producer.send_and_wait(RECEIVED, poison, key=b"p", partition=0)
                        origins.add((meta.partition, meta.offset))

                async def all_stored() -> bool:
                    return set(good) <= set((await read_database(stack.database_url)).feedback)

                await _wait_for(all_stored, 60, "the good events around the poison were stored")
                letters = await topic_records(stack.bootstrap_servers, SENTIMENT_DLQ)
                headers = [dict(letter.headers) for letter in letters]
                found = {
                    (int(h[HEADER + "source-partition"]), int(h[HEADER + "source-offset"]))
                    for h in headers
                }
                assert found == origins
                for h in headers:
                    assert h[HEADER + "source-topic"] == RECEIVED.encode()
                    assert h[HEADER + "consumer-group"] == b"closeloop-sentiment"
                    assert h[HEADER + "reason"] == b"undecodable"
                    assert h[HEADER + "error"]
                assert await status_of(stack.url("sentiment") + "/healthz") == 200

                # A run of poison says something is systemically wrong: stop, do not drain it.
                before = len(letters)
                for _ in range(300):
                    await producer.send(RECEIVED, b"{broken", key=b"p", partition=0)
                await producer.flush()

                async def circuit_open() -> bool:
                    return await status_of(stack.url("sentiment") + "/healthz") == 503

                await _wait_for(circuit_open, 60, "sentiment reports itself unhealthy")
                await asyncio.sleep(3)
                dead_lettered = await record_count(stack.bootstrap_servers, SENTIMENT_DLQ) - before
                assert 100 <= dead_lettered < 300, dead_lettered
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / "reliability-poison.json").write_text(
                    f'{{"poison_dead_lettered": {len(origins)}, "run_of_poison": 300, '
                    f'"dead_lettered_before_circuit_opened": {dead_lettered}}}\n'
                )
            finally:
                await producer.stop()
    finally:
        receiver.stop()


@pytest.mark.timeout(300)
async def test_replay_command_sends_dead_letters_back_to_their_topic(
    postgres_server_url: str, tmp_path: Path
) -> None:
    """``closeloop dlq replay <topic>`` (tools/cli) re-publishes letters; they are processed."""
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
            await producer.start()
            ids = []
            try:
                # Letters a bad deploy dead-lettered: good events with origin headers.
                for n in range(20):
                    fid, raw = _event(n, negative=n % 2 == 0)
                    ids.append(fid)
                    await producer.send_and_wait(
                        SENTIMENT_DLQ,
                        raw,
                        key=fid.encode(),
                        headers=[
                            (HEADER + "source-topic", RECEIVED.encode()),
                            (HEADER + "source-partition", b"0"),
                            (HEADER + "source-offset", str(n).encode()),
                            (HEADER + "consumer-group", b"closeloop-sentiment"),
                            (HEADER + "reason", b"processing_failed"),
                            (HEADER + "error", b"RuntimeError: bad deploy"),
                        ],
                    )
            finally:
                await producer.stop()
            result = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "closeloop_cli",
                    "--bootstrap-servers",
                    stack.bootstrap_servers,
                    "dlq",
                    "replay",
                    SENTIMENT_DLQ,
                    "--reason",
                    "processing_failed",
                    "--yes",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "NO_COLOR": "1"},
                check=False,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr

            async def replayed_and_stored() -> bool:
                return set(ids) <= set((await read_database(stack.database_url)).scores)

            await _wait_for(replayed_and_stored, 60, "replayed letters were scored and stored")
    finally:
        receiver.stop()


async def _sigterm(stack: Stack, service: str, bound_s: float) -> tuple[float, int, bool]:
    """SIGTERM ``service``; how long it took to exit, its status, and whether it shut down."""
    managed = stack.processes[service]
    assert managed.process is not None
    offset = managed.log_path.stat().st_size
    started = time.monotonic()
    managed.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(managed.process.wait, bound_s + 5)
    elapsed = time.monotonic() - started
    with managed.log_path.open("rb") as log:
        log.seek(offset)
        clean = b"Application shutdown complete" in log.read()
    return elapsed, code, clean


@pytest.mark.timeout(400)
async def test_sigterm_finishes_the_batch_commits_and_exits_in_bounded_time(
    postgres_server_url: str, tmp_path: Path
) -> None:
    bound_s = 30.0  # the consumer's stop timeout; Kubernetes' grace period must exceed it
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            plan = build_plan(
                stack.url("gateway"),
                stack.config.admin_key,
                stack.config.provider_secrets,
                6000,
                webhooks_per_provider=3,
                singles=10,
            )
            sending = asyncio.create_task(send_all(plan, items_per_s=300))
            measured: dict[str, object] = {}

            await asyncio.sleep(5)
            alerts_s, alerts_code, alerts_clean = await _sigterm(stack, "alerts", bound_s)
            # Everything alerts stored is committed, and nothing more: the in-flight batch
            # was finished and committed before the process left.
            stored = len((await read_database(stack.database_url)).feedback)
            committed = await committed_total(stack.bootstrap_servers, "closeloop-alerts", SCORED)
            measured["alerts"] = {"exit_s": round(alerts_s, 2), "code": alerts_code,
                                  "clean": alerts_clean, "stored": stored,
                                  "committed": committed}  # fmt: skip
            stack.start_service("alerts")

            await asyncio.sleep(4)
            sentiment_s, sentiment_code, sentiment_clean = await _sigterm(
                stack, "sentiment", bound_s
            )
            scored_published = await record_count(stack.bootstrap_servers, SCORED)
            committed_in = await committed_total(
                stack.bootstrap_servers, "closeloop-sentiment", RECEIVED
            )
            measured["sentiment"] = {"exit_s": round(sentiment_s, 2), "code": sentiment_code,
                                     "clean": sentiment_clean,
                                     "scored_published": scored_published,
                                     "committed": committed_in}  # fmt: skip
            stack.start_service("sentiment")

            await asyncio.sleep(3)
            ingest_s, ingest_code, ingest_clean = await _sigterm(stack, "ingest", bound_s)
            measured["ingest"] = {"exit_s": round(ingest_s, 2), "code": ingest_code,
                                  "clean": ingest_clean}  # fmt: skip
            stack.start_service("ingest")

            stats = await sending
            drained = await wait_drained(plan, stack.database_url, receiver, timeout_s=150)
            counts = count(plan, drained, receiver.snapshot(), sigterm=measured,
                           statuses=stats.statuses)  # fmt: skip
            counts.write("sigterm")

            for service in ("alerts", "sentiment", "ingest"):
                result = measured[service]
                assert isinstance(result, dict)
                # uvicorn re-raises the signal after its graceful shutdown: -15 is a clean exit.
                assert result["code"] in (0, -signal.SIGTERM), (service, result)
                assert result["clean"], (service, result)
                assert result["exit_s"] < bound_s, (service, result)
            assert stored > 0
            assert committed == stored, measured["alerts"]
            assert committed_in == scored_published, measured["sentiment"]
            assert counts.accepted_items == counts.sent_items
            counts.assert_exact()
    finally:
        receiver.stop()
