"""One producer per process, awaiting the broker's acknowledgement (acks=all)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.metrics import MESSAGES_PRODUCED
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

Headers = list[tuple[str, bytes]]


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a write in time; nothing may be reported as accepted."""


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers | None = None


class EventProducer:
    """Thin, typed wrapper over :class:`AIOKafkaProducer` with ack timeouts and metrics."""

    def __init__(self, settings: KafkaSettings, client_id: str, ack_timeout_s: float = 5.0):
        self._settings = settings
        self._client_id = client_id
        self._ack_timeout_s = ack_timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect, retrying until the broker answers (the broker may start after us)."""
        delay = 0.2
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=self._client_id,
                acks="all",
                enable_idempotence=self._settings.enable_idempotence,
                linger_ms=self._settings.linger_ms,
                max_batch_size=self._settings.max_batch_size,
                compression_type=self._settings.compression_type,
                request_timeout_ms=self._settings.request_timeout_ms,
                max_request_size=8 * 1024 * 1024,
            )
            try:
                await producer.start()
            except KafkaError as error:
                await producer.stop()
                log.warning("kafka_producer_connect_failed", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except BaseException:
                # Cancelled mid-start (shutdown while the broker is away): release its tasks.
                await asyncio.shield(producer.stop())
                raise
            self._producer = producer
            return

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def _active(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise BrokerUnavailable("producer not started")
        return self._producer

    async def send(self, message: OutgoingMessage) -> None:
        await self.send_many([message])

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send all messages and wait until the broker acknowledged every one of them.

        Raises :class:`BrokerUnavailable` if any was not acknowledged within the
        ack timeout. Some may then still have been written: consumers dedupe by id.
        """
        producer = self._active
        try:
            async with asyncio.timeout(self._ack_timeout_s):
                if len(messages) >= BATCH_API_MIN_MESSAGES:
                    futures = await _send_as_batches(producer, messages)
                else:
                    futures = [
                        await producer.send(m.topic, m.value, key=m.key, headers=m.headers)
                        for m in messages
                    ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as error:
            for m in messages:
                MESSAGES_PRODUCED.labels(m.topic, "error").inc()
            raise BrokerUnavailable(type(error).__name__) from error
        for m in messages:
            MESSAGES_PRODUCED.labels(m.topic, "ok").inc()

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True if the broker answers a metadata request now."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError, OSError):
            return False
        return True


# From this many messages on, one send builds a record batch per partition itself: aiokafka's
# per-message send() costs ~20-40 µs of Python each and one future per message, its batch
# API about what librdkafka costs. Fewer messages (single webhooks) keep send(), whose linger
# merges concurrent requests into shared batches.
BATCH_API_MIN_MESSAGES = 16


async def _send_as_batches(
    producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]
) -> list[asyncio.Future[object]]:
    """Send ``messages`` as one record batch per partition (more if one fills up); the
    partition of each message is the one ``send()`` would pick (the same key, the same
    partition, so per-key order holds whichever path an event took)."""
    by_partition: dict[tuple[str, int], list[OutgoingMessage]] = {}
    for message in messages:
        await producer.partitions_for(message.topic)  # metadata, as send() waits for it
        partition: int = producer._partition(  # send()'s own partitioner
            message.topic, None, message.key, message.value, message.key, message.value
        )
        by_partition.setdefault((message.topic, partition), []).append(message)
    futures: list[asyncio.Future[object]] = []
    for (topic, partition), group in by_partition.items():
        batch = producer.create_batch()
        for message in group:
            if _append(batch, message):
                continue
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if _append(batch, message):
                    continue
            # Larger than a batch: send() gives it a request of its own (up to the maximum).
            futures.append(
                await producer.send(
                    topic, message.value, key=message.key, partition=partition,
                    headers=message.headers,
                )
            )  # fmt: skip
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def _append(batch: BatchBuilder, message: OutgoingMessage) -> bool:
    """Add ``message`` to ``batch``; False if the batch has no room for it."""
    metadata = batch.append(
        key=message.key, value=message.value, timestamp=None, headers=message.headers or []
    )
    return metadata is not None
