"""Canonical items in, acknowledged CloudEvents on ``closeloop.feedback.received.v1`` out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from closeloop_ingest.errors import InvalidPayload
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


def feedback_messages(events: Sequence[FeedbackReceivedEvent]) -> list[OutgoingMessage]:
    """Encode every event, or refuse them all with 422 naming the items that cannot be encoded.

    The contract accepts any JSON in ``attributes`` (and providers' numbers in theirs), but
    the wire format cannot carry everything JSON can say: orjson refuses integers beyond
    64 bits and nesting deeper than 254 levels. That is the client's input, never a 500.
    """
    messages: list[OutgoingMessage] = []
    invalid: list[int] = []
    for index, event in enumerate(events):
        try:
            messages.append(feedback_message(event))
        except TypeError:  # orjson.JSONEncodeError
            invalid.append(index)
    if invalid:
        raise InvalidPayload(
            "The feedback cannot be encoded: integers must fit in 64 bits and nesting must "
            "stay under 254 levels.",
            errors=[
                {"loc": [index], "msg": "not encodable as event JSON", "type": "value_error"}
                for index in invalid
            ],
            invalid_items=invalid,
        )
    return messages


class FeedbackPublisher:
    def __init__(self, sink: MessageSink) -> None:
        self._sink = sink

    async def publish(
        self, items: Sequence[FeedbackIn], *, adapter: str, received_at: datetime
    ) -> list[uuid.UUID]:
        """Publish every item and return their ids once the broker acknowledged all of them.

        Raises :class:`BrokerUnavailable` otherwise; then nothing may be reported
        as accepted (some events may have been written: consumers dedupe by id).
        Raises :class:`InvalidPayload`, before sending anything, if an item cannot be encoded.
        """
        events = [feedback_event(item, adapter, received_at) for item in items]
        messages = feedback_messages(events)
        started = time.perf_counter()
        try:
            await self._sink.send_many(messages)
        except BrokerUnavailable:
            PUBLISH_DURATION.labels(adapter, "error").observe(time.perf_counter() - started)
            raise
        PUBLISH_DURATION.labels(adapter, "ok").observe(time.perf_counter() - started)
        for event in events:
            record_accepted(event.data, adapter)
        return [event.data.id for event in events]
