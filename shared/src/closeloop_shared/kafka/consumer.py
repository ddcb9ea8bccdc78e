"""The one Kafka consumer abstraction every Closeloop consumer uses.

The loop is: fetch a batch → decode → process → commit, with the commit last,
so a crash anywhere before it means the batch is delivered again (handlers are
idempotent, keyed by event or feedback id). Failures are sorted three ways:

* **undecodable** message (not JSON, not the contract): dead-lettered at once;
* **transient** failure (the database or broker is away): the whole batch is
  retried with capped exponential backoff, for as long as it takes; nothing is
  committed and nothing is dead-lettered, because the message is fine;
* any **other** error: the batch is retried ``max_attempts`` times, then each
  message is processed on its own so one poison message cannot hold back the
  others; a message that still fails is dead-lettered with headers naming its
  source topic, partition, offset and the error.

Dead-lettering weakens per-key ordering, which is acceptable here because
every handler is order-insensitive per feedback item. A run of
``max_consecutive_dead_letters`` says something is systemically wrong (a bad
deploy, a schema change): the consumer then stops instead of draining the
topic into the dead-letter topic, and reports itself unhealthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from closeloop_shared.config import KafkaSettings
from closeloop_shared.events import dead_letter_topic
from closeloop_shared.kafka.metrics import (
    BATCH_DURATION,
    BATCH_RETRIES,
    COMMIT_FAILURES,
    CONSUMER_LAG,
    DEAD_LETTERED,
    MESSAGES_CONSUMED,
    observe_message_age,
)
from closeloop_shared.kafka.producer import BrokerUnavailable, EventProducer, OutgoingMessage
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

DLQ_HEADER_PREFIX = "x-closeloop-dlq-"


class TransientError(Exception):
    """Raised by handlers when infrastructure is away: retry later, never dead-letter."""


@dataclass(frozen=True)
class Received(Generic[T]):
    """A decoded message with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: T
    raw: bytes
    timestamp_ms: int


@dataclass(frozen=True)
class ConsumerPolicy:
    max_attempts: int = 3
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    max_consecutive_dead_letters: int = 100
    poll_timeout_ms: int = 500


Decoder = Callable[[bytes], T]
BatchHandler = Callable[[Sequence[Received[T]]], Awaitable[None]]


class _Stopping(Exception):
    """Raised inside the loop when a stop was requested mid-retry: leave without committing."""


class CircuitOpen(Exception):
    """Too many consecutive dead letters: the consumer stopped itself."""


class BatchConsumer(Generic[T]):
    def __init__(
        self,
        *,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        decode: Decoder[T],
        handle: BatchHandler[T],
        producer: EventProducer,
        policy: ConsumerPolicy | None = None,
        transient_errors: tuple[type[BaseException], ...] = (),
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._group_id = group_id
        self._decode = decode
        self._handle = handle
        self._producer = producer
        self._policy = policy or ConsumerPolicy()
        self._transient: tuple[type[BaseException], ...] = (
            TransientError,
            BrokerUnavailable,
            OSError,
            *transient_errors,
        )
        self._client_id = client_id or group_id
        self._dead_letter_topic = dead_letter_topic(topic, group_id)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._consecutive_dead_letters = 0
        self.failure: BaseException | None = None
        self.retrying_since: float | None = None

    @property
    def dead_letter_topic(self) -> str:
        return self._dead_letter_topic

    @property
    def healthy(self) -> bool:
        """False once the loop died or the dead-letter circuit opened."""
        return self._task is not None and not self._task.done() and self.failure is None

    async def start(self) -> None:
        # Export the counters at 0 before the first message: a series that first appears
        # already counting has no increase for rate() to see until it moves again.
        for outcome in ("ok", "dead_lettered"):
            MESSAGES_CONSUMED.labels(self._topic, self._group_id, outcome)
        BATCH_RETRIES.labels(self._group_id)
        self._consumer = AIOKafkaConsumer(
            self._topic,
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=self._group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._settings.consumer_batch_size,
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
            session_timeout_ms=self._settings.session_timeout_ms,
            heartbeat_interval_ms=self._settings.heartbeat_interval_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        delay = 0.2
        while True:
            try:
                await self._consumer.start()
                break
            except KafkaError as error:
                log.warning("kafka_consumer_connect_failed", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self._group_id}")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the in-flight batch, commit it, leave the group."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
            except Exception:  # the failure is already recorded and logged
                pass
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping.is_set():
                try:
                    batches = await consumer.getmany(
                        timeout_ms=self._policy.poll_timeout_ms,
                        max_records=self._settings.consumer_batch_size,
                    )
                except KafkaError as error:
                    log.warning("kafka_fetch_failed", error=type(error).__name__)
                    await asyncio.sleep(0.5)
                    continue
                if batches:
                    started = time.perf_counter()
                    try:
                        await self._process_fetch(batches)
                    except _Stopping:
                        return
                    await self._commit(consumer, batches)
                    BATCH_DURATION.labels(self._group_id).observe(time.perf_counter() - started)
                await self._record_lag(consumer)
        except CircuitOpen as error:
            self.failure = error
            log.error("kafka_consumer_circuit_open", group=self._group_id, topic=self._topic)
        except Exception as error:
            self.failure = error
            log.exception("kafka_consumer_crashed", group=self._group_id)
            raise

    async def _process_fetch(self, batches: dict[TopicPartition, list[object]]) -> None:
        decoded: list[Received[T]] = []
        for records in batches.values():
            for record in records:
                raw: bytes = record.value or b""  # type: ignore[attr-defined]
                try:
                    value = self._decode(raw)
                except Exception as error:
                    await self._dead_letter_raw(record, error, reason="undecodable")
                    continue
                decoded.append(
                    Received(
                        topic=record.topic,  # type: ignore[attr-defined]
                        partition=record.partition,  # type: ignore[attr-defined]
                        offset=record.offset,  # type: ignore[attr-defined]
                        key=record.key,  # type: ignore[attr-defined]
                        value=value,
                        raw=raw,
                        timestamp_ms=record.timestamp,  # type: ignore[attr-defined]
                    )
                )
        if decoded:
            await self._process(decoded)

    async def _process(self, items: Sequence[Received[T]]) -> None:
        attempt = 0
        delay = self._policy.retry_initial_s
        while True:
            try:
                await self._handle(items)
            except self._transient as error:
                # Infrastructure is away: wait and retry the same batch, however long.
                BATCH_RETRIES.labels(self._group_id).inc()
                if self.retrying_since is None:
                    self.retrying_since = time.monotonic()
                    log.warning("batch_retrying", group=self._group_id, error=type(error).__name__)
                await self._sleep_or_stop(delay)
                delay = min(delay * 2, self._policy.retry_max_s)
                continue
            except Exception as error:
                attempt += 1
                if attempt < self._policy.max_attempts:
                    log.warning(
                        "batch_failed",
                        group=self._group_id,
                        attempt=attempt,
                        error=type(error).__name__,
                    )
                    await self._sleep_or_stop(delay)
                    delay = min(delay * 2, self._policy.retry_max_s)
                    continue
                if len(items) > 1:
                    # Isolate the poison message: each item gets its own attempts.
                    for item in items:
                        await self._process([item])
                    return
                await self._dead_letter(items[0], error, reason="processing_failed")
                return
            self.retrying_since = None
            self._consecutive_dead_letters = 0
            now = time.time()
            for item in items:
                MESSAGES_CONSUMED.labels(item.topic, self._group_id, "ok").inc()
                observe_message_age(item.topic, self._group_id, item.timestamp_ms, now)
            return

    async def _sleep_or_stop(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return
        raise _Stopping

    async def _dead_letter(self, item: Received[T], error: BaseException, reason: str) -> None:
        await self._publish_dead_letter(
            item.topic, item.partition, item.offset, item.key, item.raw, error, reason
        )

    async def _dead_letter_raw(self, record: object, error: BaseException, reason: str) -> None:
        await self._publish_dead_letter(
            record.topic,  # type: ignore[attr-defined]
            record.partition,  # type: ignore[attr-defined]
            record.offset,  # type: ignore[attr-defined]
            record.key,  # type: ignore[attr-defined]
            record.value or b"",  # type: ignore[attr-defined]
            error,
            reason,
        )

    async def _publish_dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        raw: bytes,
        error: BaseException,
        reason: str,
    ) -> None:
        headers = [
            (DLQ_HEADER_PREFIX + "source-topic", topic.encode()),
            (DLQ_HEADER_PREFIX + "source-partition", str(partition).encode()),
            (DLQ_HEADER_PREFIX + "source-offset", str(offset).encode()),
            (DLQ_HEADER_PREFIX + "consumer-group", self._group_id.encode()),
            (DLQ_HEADER_PREFIX + "reason", reason.encode()),
            (DLQ_HEADER_PREFIX + "error", f"{type(error).__name__}: {error}"[:1000].encode()),
        ]
        delay = self._policy.retry_initial_s
        while True:
            try:
                await self._producer.send(
                    OutgoingMessage(self._dead_letter_topic, raw, key=key, headers=headers)
                )
                break
            except BrokerUnavailable:
                await self._sleep_or_stop(delay)
                delay = min(delay * 2, self._policy.retry_max_s)
        DEAD_LETTERED.labels(topic, self._group_id, reason).inc()
        MESSAGES_CONSUMED.labels(topic, self._group_id, "dead_lettered").inc()
        log.error(
            "message_dead_lettered",
            group=self._group_id,
            source_topic=topic,
            partition=partition,
            offset=offset,
            reason=reason,
            error=type(error).__name__,
        )
        self._consecutive_dead_letters += 1
        if self._consecutive_dead_letters >= self._policy.max_consecutive_dead_letters:
            raise CircuitOpen(f"{self._consecutive_dead_letters} consecutive dead letters")

    async def _commit(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[object]]
    ) -> None:
        offsets = {
            tp: records[-1].offset + 1  # type: ignore[attr-defined]
            for tp, records in batches.items()
            if records
        }
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # Usually a rebalance moved the partition: the new owner re-reads the
            # batch and the idempotent handlers make that harmless.
            COMMIT_FAILURES.labels(self._group_id).inc()
            log.warning("kafka_commit_failed", group=self._group_id, error=type(error).__name__)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except KafkaError:
                continue
            CONSUMER_LAG.labels(tp.topic, self._group_id, str(tp.partition)).set(
                max(highwater - position, 0)
            )
