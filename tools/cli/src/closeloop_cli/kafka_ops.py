"""Topics, consumer lag and dead-letter replay, straight against the broker.

High watermarks come from a fetch (``consumer.highwater``), not ``end_offsets()``:
some Kafka-protocol brokers (Tansu) answer ListOffsets wrongly after batched
produces, while every fetch response carries the true high watermark.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from closeloop_cli.output import OperatorError
from closeloop_shared.config import KafkaSettings
from closeloop_shared.events import dead_letter_topic
from closeloop_shared.kafka.admin import CONSUMER_GROUPS, all_topics, ensure_topics
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage

DLQ_PREFIX = "x-closeloop-dlq-"
REPLAYED_FROM = "x-closeloop-replayed-from"


def known_groups() -> dict[str, str]:
    """Consumer group → the topic it reads, for every Closeloop consumer."""
    return {group: topic.value for topic, groups in CONSUMER_GROUPS.items() for group in groups}


def known_dead_letter_topics() -> list[str]:
    return [dead_letter_topic(topic, group) for group, topic in known_groups().items()]


async def _admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        async with asyncio.timeout(15):
            await admin.start()
    except (KafkaError, TimeoutError, OSError) as error:
        await admin.close()
        raise OperatorError(
            f"cannot reach the broker at {settings.bootstrap_servers} ({type(error).__name__}); "
            "set CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS or --bootstrap-servers"
        ) from error
    return admin


async def _consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="closeloop-cli",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        async with asyncio.timeout(15):
            await consumer.start()
    except (KafkaError, TimeoutError, OSError) as error:
        await consumer.stop()
        raise OperatorError(
            f"cannot reach the broker at {settings.bootstrap_servers} ({type(error).__name__})"
        ) from error
    return consumer


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    cluster = await consumer._client.fetch_all_metadata()
    found = cluster.partitions_for_topic(topic)
    if not found:
        raise OperatorError(f"topic {topic} does not exist (see `closeloop topics list`)")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def high_watermarks(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The true end of each partition, read from fetch responses."""
    consumer.assign(tps)
    hint = await consumer.end_offsets(tps)
    for tp in tps:
        consumer.seek(tp, max(hint[tp] - 1, 0))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        await consumer.getmany(*tps, timeout_ms=200)
        marks = {tp: consumer.highwater(tp) for tp in tps}
        if all(mark is not None for mark in marks.values()):
            return {tp: int(mark) for tp, mark in marks.items() if mark is not None}
        if asyncio.get_running_loop().time() > deadline:
            missing = [f"{tp.topic}[{tp.partition}]" for tp, m in marks.items() if m is None]
            raise OperatorError(f"no fetch answer for {', '.join(missing)} in {timeout_s:.0f}s")


# -- topics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    created: bool


async def create_topics(settings: KafkaSettings) -> list[TopicInfo]:
    created = set(await ensure_topics(settings))
    return await describe_topics(settings, all_topics(), created)


async def describe_topics(
    settings: KafkaSettings, names: Iterable[str] | None = None, created: set[str] | None = None
) -> list[TopicInfo]:
    consumer = await _consumer(settings)
    try:
        cluster = await consumer._client.fetch_all_metadata()
        existing = sorted(cluster.topics())
        wanted = list(names) if names is not None else existing
        return [
            TopicInfo(
                name=name,
                partitions=len(cluster.partitions_for_topic(name) or ()),
                created=name in (created or set()),
            )
            for name in wanted
        ]
    finally:
        await consumer.stop()


# -- lag ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        # Closeloop consumers start from the earliest offset when nothing was committed.
        return max(self.end - (self.committed or 0), 0)


async def consumer_lag(settings: KafkaSettings, groups: dict[str, str]) -> list[PartitionLag]:
    admin = await _admin(settings)
    consumer = await _consumer(settings)
    try:
        rows: list[PartitionLag] = []
        for group, topic in sorted(groups.items()):
            tps = await partitions(consumer, topic)
            ends = await high_watermarks(consumer, tps)
            # Some brokers only answer for partitions named explicitly.
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                meta = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else None
                rows.append(PartitionLag(group, topic, tp.partition, offset, ends[tp]))
        return rows
    finally:
        await consumer.stop()
        await admin.close()


# -- dead letters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def source_topic(self) -> str | None:
        return self.headers.get(DLQ_PREFIX + "source-topic")

    @property
    def reason(self) -> str:
        return self.headers.get(DLQ_PREFIX + "reason", "")

    @property
    def error(self) -> str:
        return self.headers.get(DLQ_PREFIX + "error", "")

    @property
    def origin(self) -> str:
        return (
            f"{self.source_topic}[{self.headers.get(DLQ_PREFIX + 'source-partition', '?')}]"
            f"@{self.headers.get(DLQ_PREFIX + 'source-offset', '?')}"
        )


@dataclass(frozen=True)
class DeadLetterFilter:
    reasons: frozenset[str] = frozenset()
    error_contains: str | None = None
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.error_contains and self.error_contains.lower() not in letter.error.lower():
            return False
        if self.partition is not None and letter.partition != self.partition:
            return False
        if self.from_offset is not None and letter.offset < self.from_offset:
            return False
        return not (self.to_offset is not None and letter.offset > self.to_offset)


@dataclass
class ReplayReport:
    scanned: int = 0
    matched: int = 0
    replayed: int = 0
    skipped_no_source: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    last_offsets: dict[int, int] = field(default_factory=dict)


async def _scan(
    consumer: AIOKafkaConsumer,
    topic: str,
    partition: int | None = None,
    from_offset: int | None = None,
    on_total: Callable[[int], None] | None = None,
    stall_s: float = 30.0,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from its start (or ``from_offset``) up to the end it had when
    the scan began: bounded, so it finishes while producers keep writing.

    A partition is done once the consumer's position reaches that end, not when a record at
    ``end - 1`` arrives: offsets may have gaps (compacted or deleted records, Tansu's batches).
    """
    tps = await partitions(consumer, topic)
    if partition is not None:
        tps = [tp for tp in tps if tp.partition == partition]
    ends = await high_watermarks(consumer, tps)
    starts = await consumer.beginning_offsets(tps)
    for tp in tps:
        starts[tp] = max(starts[tp], from_offset or 0)
        consumer.seek(tp, starts[tp])
    pending = {tp for tp in tps if starts[tp] < ends[tp]}
    if on_total is not None:
        # An upper bound: gaps in the offsets make the count lower.
        on_total(sum(max(ends[tp] - starts[tp], 0) for tp in tps))
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                yield record
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        if batches:
            last_progress = loop.time()
        elif loop.time() - last_progress > stall_s:
            stuck = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending))
            raise OperatorError(f"no records from {stuck} for {stall_s:.0f}s; try again")


async def count_records(
    settings: KafkaSettings,
    topic: str,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """How many records ``topic`` holds, counted by reading them (end minus start offsets
    is wrong on compacted or deleted topics and on brokers whose offsets have gaps)."""
    consumer = await _consumer(settings)
    try:
        count = 0
        async for _record in _scan(consumer, topic, on_total=on_total):
            count += 1
            if on_progress is not None:
                on_progress(1)
        return count
    finally:
        await consumer.stop()


async def read_dead_letters(
    settings: KafkaSettings,
    topic: str,
    selection: DeadLetterFilter,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[DeadLetter]:
    """Every message of ``topic`` from its start (or ``from_offset``) up to the current end."""
    consumer = await _consumer(settings)
    try:
        letters: list[DeadLetter] = []
        records = _scan(consumer, topic, selection.partition, selection.from_offset, on_total)
        async for record in records:
            headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
            letter = DeadLetter(
                record.topic, record.partition, record.offset, record.key, record.value or b"",
                headers,
            )  # fmt: skip
            if selection.matches(letter):
                letters.append(letter)
            if on_progress is not None:
                on_progress(1)
        return letters
    finally:
        await consumer.stop()


async def replay(
    settings: KafkaSettings,
    letters: list[DeadLetter],
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Produce each letter's original key and bytes back to its source topic."""
    report = ReplayReport(matched=len(letters))
    for letter in letters:
        report.by_reason[letter.reason] = report.by_reason.get(letter.reason, 0) + 1
    sendable = [letter for letter in letters if letter.source_topic]
    report.skipped_no_source = len(letters) - len(sendable)
    if dry_run or not sendable:
        return report
    producer = EventProducer(settings, client_id="closeloop-cli-replay", ack_timeout_s=15.0)
    try:
        async with asyncio.timeout(30):
            await producer.start()
    except TimeoutError as error:
        raise OperatorError(f"cannot reach the broker at {settings.bootstrap_servers}") from error
    try:
        for chunk_start in range(0, len(sendable), 200):
            chunk = sendable[chunk_start : chunk_start + 200]
            await producer.send_many(
                [
                    OutgoingMessage(
                        topic=letter.source_topic or "",
                        value=letter.value,
                        key=letter.key,
                        headers=[
                            (
                                REPLAYED_FROM,
                                f"{letter.topic}:{letter.partition}:{letter.offset}".encode(),
                            )
                        ],
                    )
                    for letter in chunk
                ]
            )
            for letter in chunk:
                report.last_offsets[letter.partition] = max(
                    report.last_offsets.get(letter.partition, -1), letter.offset
                )
            report.replayed += len(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
    finally:
        await producer.stop()
    return report
