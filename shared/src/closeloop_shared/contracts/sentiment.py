"""What the sentiment service publishes for each feedback item."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from closeloop_shared.contracts.feedback import ContractModel, Feedback


class SentimentLabel(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Urgency(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Sentiment(ContractModel):
    label: SentimentLabel
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    language: str
    model: str
    model_version: str
    scored_at: AwareDatetime
    # Richer analysis; optional so v1 events written before it still decode.
    emotions: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    topics: list[str] = Field(default_factory=list)
    urgency: Urgency | None = None
    urgency_cues: list[str] = Field(default_factory=list)


class ScoredFeedback(ContractModel):
    """Feedback plus its score: the alerts service needs both and nothing else."""

    feedback: Feedback
    sentiment: Sentiment


class RescoredSentiment(ContractModel):
    """A stored feedback item scored again by another model version (``closeloop rescore``).

    Only the item's id travels: the alerts service has the item and keeps this score beside
    the live one. No customer data is copied onto the re-score topic.
    """

    feedback_id: uuid.UUID
    sentiment: Sentiment
