"""What the sentiment service publishes for each feedback item."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from closeloop_shared.contracts.feedback import ContractModel, Feedback


class SentimentLabel(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Sentiment(ContractModel):
    label: SentimentLabel
    score: Annotated[float, Field(ge=-1.0, le=1.0)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    language: str
    model: str
    model_version: str
    scored_at: AwareDatetime


class ScoredFeedback(ContractModel):
    """Feedback plus its score: the alerts service needs both and nothing else."""

    feedback: Feedback
    sentiment: Sentiment
