"""The event contract: CloudEvents 1.0 JSON envelopes on versioned topics.

Every message on Kafka is one structured-mode CloudEvent whose ``data`` is a
contract model. The ``type`` carries the major version (``...v1``); a breaking
change to ``data`` is a new type on a new topic, never an edit of an old one.
JSON Schemas for each envelope are generated into ``shared/schemas/`` by
``make schemas`` and checked for drift by the tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from closeloop_shared.contracts.alerts import AlertLifecycle, CustomerReplyRequest
from closeloop_shared.contracts.feedback import Feedback
from closeloop_shared.contracts.sentiment import RescoredSentiment, ScoredFeedback


class Topic(StrEnum):
    FEEDBACK_RECEIVED = "closeloop.feedback.received.v1"
    FEEDBACK_SCORED = "closeloop.feedback.scored.v1"
    ALERT_LIFECYCLE = "closeloop.alert.lifecycle.v1"
    CUSTOMER_REPLY_REQUESTED = "closeloop.customer.reply.requested.v1"
    SENTIMENT_RESCORED = "closeloop.sentiment.rescored.v1"


class EventType(StrEnum):
    FEEDBACK_RECEIVED = "com.closeloop.feedback.received.v1"
    FEEDBACK_SCORED = "com.closeloop.feedback.scored.v1"
    ALERT_RAISED = "com.closeloop.alert.raised.v1"
    ALERT_ACKNOWLEDGED = "com.closeloop.alert.acknowledged.v1"
    ALERT_RESOLVED = "com.closeloop.alert.resolved.v1"
    ALERT_REOPENED = "com.closeloop.alert.reopened.v1"
    ALERT_ASSIGNED = "com.closeloop.alert.assigned.v1"
    ALERT_COMMENTED = "com.closeloop.alert.commented.v1"
    ALERT_ESCALATED = "com.closeloop.alert.escalated.v1"
    CUSTOMER_REPLY_REQUESTED = "com.closeloop.customer.reply.requested.v1"
    SENTIMENT_RESCORED = "com.closeloop.sentiment.rescored.v1"


def dead_letter_topic(source: Topic | str, consumer_group: str) -> str:
    """One dead-letter topic per (source topic, consumer group): ``<topic>.<group>.dlq``."""
    return f"{source}.{consumer_group}.dlq"


DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 structured-mode JSON envelope."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: DataT


class FeedbackReceivedEvent(CloudEvent[Feedback]):
    type: Literal[EventType.FEEDBACK_RECEIVED] = EventType.FEEDBACK_RECEIVED


class FeedbackScoredEvent(CloudEvent[ScoredFeedback]):
    type: Literal[EventType.FEEDBACK_SCORED] = EventType.FEEDBACK_SCORED


class AlertLifecycleEvent(CloudEvent[AlertLifecycle]):
    type: Literal[
        EventType.ALERT_RAISED,
        EventType.ALERT_ACKNOWLEDGED,
        EventType.ALERT_RESOLVED,
        EventType.ALERT_REOPENED,
        EventType.ALERT_ASSIGNED,
        EventType.ALERT_COMMENTED,
        EventType.ALERT_ESCALATED,
    ]


class CustomerReplyRequestedEvent(CloudEvent[CustomerReplyRequest]):
    type: Literal[EventType.CUSTOMER_REPLY_REQUESTED] = EventType.CUSTOMER_REPLY_REQUESTED


class SentimentRescoredEvent(CloudEvent[RescoredSentiment]):
    type: Literal[EventType.SENTIMENT_RESCORED] = EventType.SENTIMENT_RESCORED


def new_event_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


def encode(event: CloudEvent[DataT]) -> bytes:
    """Serialise an envelope to the bytes that go on the wire (compact JSON, UTF-8)."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))
