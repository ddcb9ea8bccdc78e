"""The batch handler: received feedback in, one scored event per item out.

A consumed batch is scored in one call on the scoring thread and all its
results are published with one ``send_many``; the consumer commits the batch
only after that returned (acks=all), so a crash anywhere in between means the
batch is delivered and scored again. Re-scoring is harmless: the scored event's
id is derived from the feedback id and the model version, so a re-delivery
publishes an event with the same id and downstream consumers dedupe it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Protocol, TypeVar

from closeloop_sentiment.metrics import FEEDBACK_SCORED, ITEMS_SCORED, SCORING_DURATION
from closeloop_sentiment.scoring import Scorer, ScoringInput, scoring_input
from closeloop_shared.contracts.feedback import Feedback
from closeloop_shared.contracts.sentiment import ScoredFeedback, Sentiment
from closeloop_shared.events import FeedbackReceivedEvent, FeedbackScoredEvent, Topic, encode
from closeloop_shared.kafka.consumer import Received
from closeloop_shared.kafka.producer import OutgoingMessage
from closeloop_shared.logging import get_logger
from closeloop_shared.metric_labels import NONE, TOUCHPOINTS

log = get_logger(__name__)

CONSUMER_GROUP = "closeloop-sentiment"
EVENT_SOURCE = "/closeloop/sentiment"
# Fixed so that the same (feedback, model version) gets the same event id in
# every process and release: uuid5(namespace, "<feedback id>:<model>:<version>").
SCORED_EVENT_NAMESPACE = uuid.UUID("a370c5bd-d726-4360-9dae-6401e40ea1d2")

ResultT = TypeVar("ResultT")


class MessagePublisher(Protocol):
    """The part of :class:`closeloop_shared.kafka.producer.EventProducer` this handler uses."""

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None: ...


def scored_event_id(feedback: Feedback, sentiment: Sentiment) -> str:
    name = f"{feedback.id}:{sentiment.model}:{sentiment.model_version}"
    return str(uuid.uuid5(SCORED_EVENT_NAMESPACE, name))


def scored_event(feedback: Feedback, sentiment: Sentiment) -> FeedbackScoredEvent:
    return FeedbackScoredEvent(
        id=scored_event_id(feedback, sentiment),
        source=EVENT_SOURCE,
        subject=str(feedback.id),
        time=sentiment.scored_at,
        data=ScoredFeedback(feedback=feedback, sentiment=sentiment),
    )


def scored_message(event: FeedbackScoredEvent) -> OutgoingMessage:
    # Keyed by feedback id, like every event about the item, so they stay in order.
    return OutgoingMessage(
        Topic.FEEDBACK_SCORED.value, encode(event), key=str(event.data.feedback.id).encode()
    )


class SentimentService:
    def __init__(self, scorer: Scorer, publisher: MessagePublisher, executor: Executor) -> None:
        self._scorer = scorer
        self._publisher = publisher
        # One thread: scoring is CPU-bound, so more threads would only contend
        # for the GIL, and one batch at a time keeps the event loop responsive.
        self._executor = executor

    @property
    def scorer(self) -> Scorer:
        return self._scorer

    async def _off_loop(self, work: Callable[[], ResultT]) -> ResultT:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def score(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        """Score on the scoring thread without publishing (the debugging endpoint)."""
        return await self._off_loop(lambda: self._scorer.score_batch(items))

    def _score_feedback(self, feedback: Sequence[Feedback]) -> list[Sentiment]:
        started = time.perf_counter()
        sentiments = self._scorer.score_batch([scoring_input(item) for item in feedback])
        SCORING_DURATION.observe(time.perf_counter() - started)
        return sentiments

    async def handle_batch(self, batch: Sequence[Received[FeedbackReceivedEvent]]) -> None:
        """The :class:`BatchConsumer` handler: score every item, publish all, return."""
        feedback = [received.value.data for received in batch]
        sentiments = await self._off_loop(lambda: self._score_feedback(feedback))
        events = [
            scored_event(item, sentiment)
            for item, sentiment in zip(feedback, sentiments, strict=True)
        ]
        await self._publisher.send_many([scored_message(event) for event in events])
        for item, sentiment in zip(feedback, sentiments, strict=True):
            ITEMS_SCORED.labels(sentiment.language, sentiment.label.value).inc()
            FEEDBACK_SCORED.labels(
                item.channel.value,
                TOUCHPOINTS(item.touchpoint),
                item.journey_stage.value if item.journey_stage else NONE,
                sentiment.label.value,
            ).inc()
        log.info("feedback_scored", items=len(events))
