"""Canonical items in, acknowledged CloudEvents on ``closeloop.feedback.received.v1`` out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from closeloop_ingest.metrics import PUBLISH_DURATION, record_accepted
from closeloop_shared.contracts.feedback import FeedbackIn, identify
from closeloop_shared.events import FeedbackReceivedEvent, Topic, encode
from closeloop_shared.kafka.producer import BrokerUnavailable, OutgoingMessage

EVENT_SOURCE_PREFIX = "/closeloop/ingest/"
_CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json; charset=utf-8")


class MessageSink(Protocol):
    """What the publisher needs from :class:`closeloop_shared.kafka.producer.EventProducer`."""

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None: ...


def feedback_event(item: FeedbackIn, adapter: str, received_at: datetime) -> FeedbackReceivedEvent:
    """The envelope for one item; its id is the feedback id, so a provider retry is the same event."""
    feedback = identify(item, received_at)
    feedback_id = str(feedback.id)
    return FeedbackReceivedEvent(
        id=feedback_id,
        source=EVENT_SOURCE_PREFIX + adapter,
        subject=feedback_id,
        time=received_at,
        data=feedback,
    )


def feedback_message(event: FeedbackReceivedEvent) -> OutgoingMessage:
    # Keyed by feedback id: every event about one item lands on one partition, in order.
    return OutgoingMessage(
        topic=Topic.FEEDBACK_RECEIVED.value,
        value=encode(event),
        key=str(event.data.id).encode(),
        headers=[_CONTENT_TYPE_HEADER],
    )


class FeedbackPublisher:
    def __init__(self, sink: MessageSink) -> None:
        self._sink = sink

    async def publish(
        self, items: Sequence[FeedbackIn], *, adapter: str, received_at: datetime
    ) -> list[uuid.UUID]:
        """Publish every item and return their ids once the broker acknowledged all of them.

        Raises :class:`BrokerUnavailable` otherwise; then nothing may be reported
        as accepted (some events may have been written: consumers dedupe by id).
        """
        events = [feedback_event(item, adapter, received_at) for item in items]
        started = time.perf_counter()
        try:
            await self._sink.send_many([feedback_message(event) for event in events])
        except BrokerUnavailable:
            PUBLISH_DURATION.labels(adapter, "error").observe(time.perf_counter() - started)
            raise
        PUBLISH_DURATION.labels(adapter, "ok").observe(time.perf_counter() - started)
        for event in events:
            record_accepted(event.data, adapter)
        return [event.data.id for event in events]
