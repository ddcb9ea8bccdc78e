"""Re-scores by another model version, kept beside the live score (``closeloop rescore --apply``).

``closeloop rescore`` scores stored feedback with a chosen sentiment deployment and publishes
one ``com.closeloop.sentiment.rescored.v1`` event per item on
``closeloop.sentiment.rescored.v1``. This module's consumer (group
``closeloop-alerts-rescores``, apart from the live ``closeloop-alerts`` group, so a large
re-score never delays the live stream) inserts each score as one more row of
``sentiment_score``: ``ON CONFLICT DO NOTHING`` on (feedback, model, model_version), so a
re-run or a redelivery stores nothing twice and never overwrites a score. It touches no
alert, delivery or outbox row.

**The live score** of an item is the first one stored for it (the lowest id): the live
consumer stores it in the same transaction as the item, and every re-score is stored later
(the re-score reads the item from this database). Alerts, spike detection, KPIs and the
feedback API read the live score (:func:`live_first`), so a re-score changes none of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.access import UNRESTRICTED, Access, CallerAccess, hidden
from closeloop_alerts.models import Alert, Feedback, SentimentScore
from closeloop_alerts.schemas import SentimentOut
from closeloop_shared.events import SentimentRescoredEvent
from closeloop_shared.http.observability import problem
from closeloop_shared.kafka.consumer import Received, TransientError
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

RESCORES = Counter(
    "closeloop_alerts_rescores_total",
    "Re-scores consumed from closeloop.sentiment.rescored.v1, by outcome: stored, duplicate "
    "(that model version's score of the item is stored already) or unknown_feedback (the "
    "item is not stored, e.g. deleted since).",
    ["outcome"],
)


def live_first() -> tuple[ColumnElement[Any], ...]:
    """ORDER BY terms that put an item's live score first among its scores (see above)."""
    return (SentimentScore.id.asc(),)


def decode_rescore(raw: bytes) -> SentimentRescoredEvent:
    return SentimentRescoredEvent.model_validate_json(raw)


def _row(event: SentimentRescoredEvent) -> dict[str, Any]:
    sentiment = event.data.sentiment
    return {
        "feedback_id": event.data.feedback_id,
        "label": sentiment.label.value,
        "score": sentiment.score,
        "confidence": sentiment.confidence,
        "topics": [str(topic).replace("\x00", "\ufffd") for topic in sentiment.topics],
        "urgency": sentiment.urgency.value if sentiment.urgency is not None else None,
        "emotions": {
            emotion.replace("\x00", "\ufffd"): intensity
            for emotion, intensity in sentiment.emotions.items()
        },
        "urgency_cues": [cue.replace("\x00", "\ufffd") for cue in sentiment.urgency_cues],
        "language": sentiment.language.replace("\x00", "\ufffd"),
        "model": sentiment.model.replace("\x00", "\ufffd"),
        "model_version": sentiment.model_version.replace("\x00", "\ufffd"),
        "scored_at": sentiment.scored_at,
    }


class RescoreIntake:
    """The :class:`BatchConsumer` handler of ``closeloop.sentiment.rescored.v1``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def handle(self, batch: Sequence[Received[SentimentRescoredEvent]]) -> None:
        try:
            await self.store([received.value for received in batch])
        except Exception as error:
            # The database's state (outage, deadlock), not a bad message: retry the batch.
            if repository.is_retryable(error):
                raise TransientError(type(error).__name__) from error
            raise

    async def store(self, events: Sequence[SentimentRescoredEvent]) -> int:
        """Insert the scores of items still stored; returns how many were new."""
        rows: dict[tuple[uuid.UUID, str, str], dict[str, Any]] = {}
        for event in events:
            row = _row(event)
            rows[(row["feedback_id"], row["model"], row["model_version"])] = row
        if not rows:
            return 0
        # Sorted, so concurrent batches lock the same items in the same order.
        ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0], k[1], k[2]))]
        async with self._sessionmaker() as session, session.begin():
            # KEY SHARE: an item cannot be deleted between this check and the insert.
            present = set(
                await session.scalars(
                    select(Feedback.id)
                    .where(Feedback.id.in_({row["feedback_id"] for row in ordered}))
                    .with_for_update(key_share=True)
                )
            )
            storable = [row for row in ordered if row["feedback_id"] in present]
            inserted = 0
            if storable:
                result = await session.scalars(
                    insert(SentimentScore)
                    .values(storable)
                    .on_conflict_do_nothing(
                        index_elements=[
                            SentimentScore.feedback_id,
                            SentimentScore.model,
                            SentimentScore.model_version,
                        ]
                    )
                    .returning(SentimentScore.id)
                )
                inserted = len(result.all())
        RESCORES.labels("stored").inc(inserted)
        RESCORES.labels("duplicate").inc(len(storable) - inserted)
        RESCORES.labels("unknown_feedback").inc(len(ordered) - len(storable))
        log.info(
            "rescores_stored",
            stored=inserted,
            duplicates=len(storable) - inserted,
            unknown_feedback=len(ordered) - len(storable),
        )
        return inserted


# --- Score history (the support API) -----------------------------------------------------------


class ScoreHistoryEntry(SentimentOut):
    live: bool
    """The score the pipeline acted on (routing, alerts, spikes, KPIs)."""
    raised_alert: bool
    """The score the item's alert was raised from (usually the live one)."""
    stored_at: datetime


class ScoreHistory(BaseModel):
    model_config = ConfigDict(frozen=True)

    feedback_id: uuid.UUID
    live: ScoreHistoryEntry
    scores: list[ScoreHistoryEntry]
    """Every stored score of the item, the live one first, then by when it was stored."""


async def score_history(
    session: AsyncSession, feedback_id: uuid.UUID, access: Access = UNRESTRICTED
) -> ScoreHistory | Literal["hidden"] | None:
    """The item's scores; None if it has none, "hidden" if ``access`` may not see it (an
    agent or lead sees only items whose alert is their team's, as on the item itself)."""
    scores = list(
        await session.scalars(
            select(SentimentScore)
            .where(SentimentScore.feedback_id == feedback_id)
            .order_by(*live_first())
        )
    )
    if not scores:
        return None
    alert = (
        await session.execute(
            select(Alert.sentiment_score_id, Alert.owner_id, Alert.escalated_to).where(
                Alert.feedback_id == feedback_id, Alert.kind == "item"
            )
        )
    ).first()
    if access.scoped and (alert is None or not access.sees(alert.owner_id, alert.escalated_to)):
        return "hidden"
    alerted = alert.sentiment_score_id if alert is not None else None
    entries = [
        ScoreHistoryEntry(
            **SentimentOut.of(score).model_dump(),
            live=position == 0,
            raised_alert=score.id == alerted,
            stored_at=score.stored_at,
        )
        for position, score in enumerate(scores)
    ]
    return ScoreHistory(feedback_id=feedback_id, live=entries[0], scores=entries)


router = APIRouter(prefix="/v1", tags=["feedback"])


@router.get(
    "/feedback/{feedback_id}/scores",
    response_model=ScoreHistory,
    responses={404: {"description": "No such feedback item."}},
)
async def get_score_history(
    feedback_id: Annotated[uuid.UUID, Path()], request: Request, access: CallerAccess
) -> ScoreHistory | JSONResponse:
    """Every score of a stored item with its model and version; which one is live. Team
    scoped like the item itself: another team's item answers 404, as an unknown one does."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.api.sessionmaker
    async with sessionmaker() as session:
        history = await score_history(session, feedback_id, access)
    if history == "hidden":
        return hidden("feedback", feedback_id)
    if history is None:
        return problem(
            404, "feedback_not_found", f"No feedback with id {feedback_id}.", id=str(feedback_id)
        )
    return history
