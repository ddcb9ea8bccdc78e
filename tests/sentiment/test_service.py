"""The batch handler with a fake scorer and a fake publisher (no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import REGISTRY

from closeloop_sentiment.scoring import ScoringInput
from closeloop_sentiment.service import (
    EVENT_SOURCE,
    SCORED_EVENT_NAMESPACE,
    SentimentService,
)
from closeloop_shared.contracts.feedback import Channel, Feedback
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel
from closeloop_shared.events import (
    EventType,
    FeedbackReceivedEvent,
    FeedbackScoredEvent,
    Topic,
    encode,
)
from closeloop_shared.kafka.consumer import Received
from closeloop_shared.kafka.producer import OutgoingMessage

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class KeywordScorer:
    """A stand-in model: anything implementing the Scorer protocol can be plugged in."""

    model_name = "keyword-test"
    model_version = "0.0.1"

    def __init__(self) -> None:
        self.batches: list[list[ScoringInput]] = []

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        self.batches.append(list(items))
        return [
            Sentiment(
                label=SentimentLabel.NEGATIVE if "bad" in item.text else SentimentLabel.POSITIVE,
                score=-0.8 if "bad" in item.text else 0.8,
                confidence=0.9,
                language="en",
                model=self.model_name,
                model_version=self.model_version,
                scored_at=NOW,
            )
            for item in items
        ]


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[list[OutgoingMessage]] = []

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.append(list(messages))


class BrokerDown(Exception):
    pass


class FailingPublisher:
    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        raise BrokerDown


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def received(text: str, offset: int = 0, **fields: object) -> Received[FeedbackReceivedEvent]:
    feedback = Feedback(
        id=uuid.uuid4(),
        channel=Channel.APP,
        external_id=f"review-{offset}",
        text=text,
        occurred_at=NOW,
        received_at=NOW,
        **fields,
    )
    event = FeedbackReceivedEvent(
        id=str(uuid.uuid4()), source="/closeloop/ingest", time=NOW, data=feedback
    )
    raw = encode(event)
    return Received(
        topic=Topic.FEEDBACK_RECEIVED.value,
        partition=0,
        offset=offset,
        key=str(feedback.id).encode(),
        value=FeedbackReceivedEvent.model_validate_json(raw),
        raw=raw,
        timestamp_ms=0,
    )


def items_scored(language: str, label: str) -> float:
    value = REGISTRY.get_sample_value(
        "closeloop_sentiment_items_scored_total", {"language": language, "label": label}
    )
    return value or 0.0


async def test_a_batch_is_scored_in_one_call_and_published_in_one_send(
    executor: ThreadPoolExecutor,
) -> None:
    scorer, publisher = KeywordScorer(), RecordingPublisher()
    service = SentimentService(scorer, publisher, executor)
    batch = [received("bad service", 0), received("lovely", 1), received("bad again", 2)]
    negatives_before = items_scored("en", "negative")

    await service.handle_batch(batch)

    assert len(scorer.batches) == 1
    assert [item.text for item in scorer.batches[0]] == ["bad service", "lovely", "bad again"]
    assert len(publisher.sent) == 1
    messages = publisher.sent[0]
    assert [message.topic for message in messages] == [Topic.FEEDBACK_SCORED.value] * 3
    for message, item in zip(messages, batch, strict=True):
        feedback = item.value.data
        assert message.key == str(feedback.id).encode()
        event = FeedbackScoredEvent.model_validate_json(message.value)
        assert event.type == EventType.FEEDBACK_SCORED
        assert event.source == EVENT_SOURCE
        assert event.subject == str(feedback.id)
        assert event.time == event.data.sentiment.scored_at == NOW
        assert event.data.feedback == feedback
        assert event.id == str(
            uuid.uuid5(SCORED_EVENT_NAMESPACE, f"{feedback.id}:keyword-test:0.0.1")
        )
    labels = [
        FeedbackScoredEvent.model_validate_json(m.value).data.sentiment.label for m in messages
    ]
    assert labels == [SentimentLabel.NEGATIVE, SentimentLabel.POSITIVE, SentimentLabel.NEGATIVE]
    assert items_scored("en", "negative") == negatives_before + 2


async def test_a_redelivered_item_gets_the_same_event_id(executor: ThreadPoolExecutor) -> None:
    publisher = RecordingPublisher()
    service = SentimentService(KeywordScorer(), publisher, executor)
    item = received("bad")
    await service.handle_batch([item])
    await service.handle_batch([item])
    first, second = (orjson.loads(sent[0].value) for sent in publisher.sent)
    assert first["id"] == second["id"]


async def test_nothing_is_counted_when_publishing_fails(executor: ThreadPoolExecutor) -> None:
    # The consumer retries the batch; counting it now would count it twice.
    service = SentimentService(KeywordScorer(), FailingPublisher(), executor)
    before = items_scored("en", "positive")
    with pytest.raises(BrokerDown):
        await service.handle_batch([received("lovely")])
    assert items_scored("en", "positive") == before


async def test_the_scorer_sees_the_customers_turns(executor: ThreadPoolExecutor) -> None:
    scorer = KeywordScorer()
    service = SentimentService(scorer, RecordingPublisher(), executor)
    transcript = [
        {"role": "agent", "text": "Lovely to hear from you"},
        {"role": "customer", "text": "This is bad"},
    ]
    await service.handle_batch(
        [received("Agent: lovely. Customer: bad.", attributes={"transcript": transcript})]
    )
    assert [item.text for item in scorer.batches[0]] == ["This is bad"]


async def test_score_does_not_publish(executor: ThreadPoolExecutor) -> None:
    publisher = RecordingPublisher()
    service = SentimentService(KeywordScorer(), publisher, executor)
    [sentiment] = await service.score([ScoringInput("bad")])
    assert sentiment.label is SentimentLabel.NEGATIVE
    assert publisher.sent == []
