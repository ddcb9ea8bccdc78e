"""The sentiment service: a Kafka consumer with an HTTP face for probes, metrics and debugging.

Startup runs in the background of the lifespan: loading the models takes ~4 s
and the broker may not be up yet, and meanwhile ``/healthz`` and ``/readyz``
should answer (ready only once the models are loaded and the broker answers)
rather than leave the orchestrator guessing. The consumer starts only after
both, so no message is ever handled by a half-loaded service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException
from pydantic import Field

from closeloop_sentiment.config import SentimentSettings
from closeloop_sentiment.metrics import MODEL_INFO
from closeloop_sentiment.scoring import MODES, LexiconScorer, Scorer, ScoringInput
from closeloop_sentiment.service import CONSUMER_GROUP, SentimentService
from closeloop_sentiment.taxonomy import Taxonomy
from closeloop_sentiment.text import prepare
from closeloop_shared.config import KafkaSettings
from closeloop_shared.contracts.feedback import MAX_TEXT_CHARS, Channel, ContractModel, Rating
from closeloop_shared.contracts.sentiment import Sentiment
from closeloop_shared.events import FeedbackReceivedEvent, Topic
from closeloop_shared.http.observability import PROMETHEUS_ONLY, install_observability
from closeloop_shared.kafka.consumer import BatchConsumer
from closeloop_shared.kafka.producer import EventProducer
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

SERVICE_NAME = "closeloop-sentiment"  # consumer group, client id
# The `service` label on metrics and logs: the bare name, as every service uses.
SERVICE_LABEL = "sentiment"
RETRY_AFTER_S = 5

ScorerLoader = Callable[[], Scorer]


class ScoreRequest(ContractModel):
    """``POST /v1/score``: a text as a feedback item would carry it."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    rating: Rating | None = None
    language: Annotated[str, Field(max_length=16)] | None = None
    """A declared language (a locale); a hint for detection, not an override."""
    channel: Channel | None = None
    """Applies the channel's text handling (email quotes and signatures, hotline roles, …)."""
    subject: Annotated[str, Field(max_length=1000)] | None = None


MAX_BATCH_ITEMS = 500


class BatchScoreItem(ScoreRequest):
    """One item of ``POST /v1/score/batch``: a stored feedback item's text, as the stream
    scores it (``attributes`` carries a contact-center ``transcript``, if any)."""

    attributes: dict[str, Any] = Field(default_factory=dict)


class BatchScoreRequest(ContractModel):
    items: Annotated[list[BatchScoreItem], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class BatchScoreResponse(ContractModel):
    model: str
    model_version: str
    results: list[Sentiment]
    """One per item, in the order of the request."""


class SentimentRuntime:
    """Everything with a lifetime: scoring thread, models, producer, consumer."""

    def __init__(
        self, settings: SentimentSettings, kafka: KafkaSettings, load_scorer: ScorerLoader
    ) -> None:
        self._kafka = kafka
        self.consuming = settings.consume_enabled
        self._load_scorer = load_scorer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentiment-scoring")
        self.producer = EventProducer(
            kafka, client_id=SERVICE_NAME, ack_timeout_s=settings.publish_ack_timeout_s
        )
        self.service: SentimentService | None = None
        self.consumer: BatchConsumer[FeedbackReceivedEvent] | None = None
        self.startup_failure: BaseException | None = None
        self._startup: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._startup = asyncio.create_task(self._start(), name="sentiment-startup")

    async def _start(self) -> None:
        try:
            if not self.consuming:
                # Score-only: no broker needed, no consumer group joined.
                await self._load_models()
                log.info("sentiment_score_only", hint="CLOSELOOP_SENTIMENT_CONSUME_ENABLED=false")
                return
            async with asyncio.TaskGroup() as group:
                group.create_task(self._load_models())
                group.create_task(self.producer.start())
            assert self.service is not None
            self.consumer = BatchConsumer(
                settings=self._kafka,
                topic=Topic.FEEDBACK_RECEIVED.value,
                group_id=CONSUMER_GROUP,
                decode=FeedbackReceivedEvent.model_validate_json,
                handle=self.service.handle_batch,
                producer=self.producer,
                client_id=SERVICE_NAME,
            )
            await self.consumer.start()
            log.info("sentiment_consumer_started", group=CONSUMER_GROUP)
        except Exception as error:
            # Recorded for the liveness probe, which then asks for a restart.
            self.startup_failure = error
            log.exception("sentiment_startup_failed", error=type(error).__name__)

    async def _load_models(self) -> None:
        loop = asyncio.get_running_loop()
        scorer = await loop.run_in_executor(self.executor, self._load_scorer)
        self.service = SentimentService(scorer, self.producer, self.executor)
        MODEL_INFO.labels(scorer.model_name, scorer.model_version).set(1)
        log.info("sentiment_model_loaded", model=scorer.model_name, version=scorer.model_version)

    @property
    def starting(self) -> bool:
        return self._startup is not None and not self._startup.done()

    def alive(self) -> bool:
        """False once startup failed or the consumer loop stopped; true while starting."""
        if self.startup_failure is not None:
            return False
        if self.starting:
            return True
        if not self.consuming:
            return self.service is not None
        return self.consumer is not None and self.consumer.healthy

    async def close(self) -> None:
        """Stop consuming (the in-flight batch is finished and committed), then producing."""
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup
        if self.consumer is not None:
            await self.consumer.stop()
        await self.producer.stop()
        # A model load still running cannot be interrupted; do not wait for it.
        self.executor.shutdown(wait=False, cancel_futures=True)


def default_loader(settings: SentimentSettings) -> ScorerLoader:
    """The configured model (fast or accurate), with the configured taxonomy if there is one
    (read at load, on the scoring thread; a bad file fails startup, which the liveness
    probe reports)."""
    taxonomy_file = settings.taxonomy_file
    mode = MODES[settings.model]

    def load() -> Scorer:
        taxonomy = Taxonomy.load(taxonomy_file) if taxonomy_file is not None else None
        return LexiconScorer.load(taxonomy, mode)

    return load


def create_app(
    settings: SentimentSettings | None = None,
    kafka: KafkaSettings | None = None,
    *,
    load_scorer: ScorerLoader | None = None,
) -> FastAPI:
    settings = settings or SentimentSettings()
    if load_scorer is None:
        load_scorer = default_loader(settings)
    kafka = kafka or KafkaSettings()
    runtime: SentimentRuntime | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        nonlocal runtime
        runtime = SentimentRuntime(settings, kafka, load_scorer)
        runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        telemetry=PROMETHEUS_ONLY,
        title="Closeloop sentiment",
        summary="Scores every feedback item (language, sentiment) and publishes the result.",
        lifespan=lifespan,
    )

    async def models_loaded() -> bool:
        return runtime is not None and runtime.service is not None

    async def broker_answers() -> bool:
        return runtime is not None and await runtime.producer.ping()

    readiness: dict[str, Callable[[], Awaitable[bool]]] = {"models": models_loaded}
    if settings.consume_enabled:
        readiness["broker"] = broker_answers

    def alive() -> bool:
        return runtime is not None and runtime.alive()

    install_observability(
        app,
        service=SERVICE_LABEL,
        readiness=readiness,
        liveness=alive,
    )

    if settings.score_endpoint_enabled:

        def loaded_service() -> SentimentService:
            service = runtime.service if runtime is not None else None
            if service is None:
                raise HTTPException(
                    503, "The model is still loading.", headers={"Retry-After": str(RETRY_AFTER_S)}
                )
            return service

        @app.post("/v1/score", response_model=Sentiment, tags=["debugging"])
        async def score(request: ScoreRequest) -> Sentiment:
            """Score one text with the running model; nothing is published."""
            [sentiment] = await loaded_service().score([_scoring_input(request, {})])
            return sentiment

        @app.post("/v1/score/batch", response_model=BatchScoreResponse, tags=["re-scoring"])
        async def score_batch(request: BatchScoreRequest) -> BatchScoreResponse:
            """Score up to 500 stored items in one call on the scoring thread (the event loop
            stays free); nothing is published. ``closeloop rescore`` calls this."""
            service = loaded_service()
            sentiments = await service.score(
                [_scoring_input(item, item.attributes) for item in request.items]
            )
            return BatchScoreResponse(
                model=service.scorer.model_name,
                model_version=service.scorer.model_version,
                results=sentiments,
            )

    return app


def _scoring_input(request: ScoreRequest, attributes: dict[str, Any]) -> ScoringInput:
    """The text as the stream prepares it for the request's channel (quotes, roles, tags)."""
    channel = request.channel.value if request.channel is not None else None
    prepared = prepare(channel, request.text, request.subject, attributes)
    return ScoringInput(
        text=prepared.text,
        rating=request.rating,
        declared_language=request.language,
        channel=channel,
    )
