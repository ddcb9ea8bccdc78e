"""Canonical feedback: what every channel adapter normalises its payload into."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

# Fixed namespace so that feedback ids are stable across processes, releases and
# machines: uuid5(namespace, "<channel>:<external_id>").
FEEDBACK_ID_NAMESPACE = uuid.UUID("6f1c2b8e-4a57-5d3e-9c1a-2b7d0e5f8a31")

MAX_TEXT_CHARS = 100_000


class Channel(StrEnum):
    HOTLINE = "hotline"
    EMAIL = "email"
    SOCIAL = "social"
    APP = "app"


class RatingType(StrEnum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"
    STARS = "stars"


# Inclusive value range per rating scale: NPS 0-10, CSAT 1-5, CES 1-7, stars 1-5.
RATING_RANGES: dict[RatingType, tuple[float, float]] = {
    RatingType.NPS: (0, 10),
    RatingType.CSAT: (1, 5),
    RatingType.CES: (1, 7),
    RatingType.STARS: (1, 5),
}


class JourneyStage(StrEnum):
    AWARENESS = "awareness"
    CONSIDERATION = "consideration"
    PURCHASE = "purchase"
    ONBOARDING = "onboarding"
    USAGE = "usage"
    SUPPORT = "support"
    RENEWAL = "renewal"


class ContractModel(BaseModel):
    """Base of every contract model: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def as_sent(max_length: int, pattern: str | None = None) -> BeforeValidator:
    """Hold a string as the client sent it to its published ``maxLength`` and ``pattern``.

    ContractModel strips surrounding whitespace and pydantic checks the field's constraints
    on the stripped value, so without this a value the published schema refuses (257
    characters with a leading tab against maxLength 256, " web" against a slug pattern)
    would be accepted. Stripping still happens afterwards.
    """
    compiled = re.compile(pattern) if pattern is not None else None

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > max_length:
                raise PydanticCustomError(
                    "string_too_long",
                    "String should have at most {max_length} characters",
                    {"max_length": max_length},
                )
            if compiled is not None and compiled.search(value) is None:
                raise PydanticCustomError(
                    "string_pattern_mismatch",
                    "String should match pattern '{pattern}'",
                    {"pattern": pattern},
                )
        return value

    return BeforeValidator(check)


ShortText = Annotated[str, Field(max_length=512), as_sent(512)]


class Customer(ContractModel):
    id: ShortText | None = None
    name: ShortText | None = None
    email: ShortText | None = None
    phone: ShortText | None = None
    handle: ShortText | None = None
    tier: ShortText | None = None


class Rating(ContractModel):
    # Each scale's range is in the published schema too (if type is X then value in range),
    # so a client validating against the schema refuses what the API refuses.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": scale.value}}},
                    "then": {"properties": {"value": {"minimum": low, "maximum": high}}},
                }
                for scale, (low, high) in RATING_RANGES.items()
            ]
        },
    )

    type: RatingType
    value: float

    @model_validator(mode="after")
    def _value_in_scale(self) -> Rating:
        low, high = RATING_RANGES[self.type]
        if not low <= self.value <= high:
            raise ValueError(f"{self.type.value} rating must be between {low:g} and {high:g}")
        return self


TOUCHPOINT = r"^[a-z0-9_\-]+$"


class FeedbackIn(ContractModel):
    """One canonical feedback item as a client submits it (the public API body)."""

    channel: Channel
    external_id: Annotated[str, Field(min_length=1, max_length=256), as_sent(256)]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), as_sent(MAX_TEXT_CHARS)]
    subject: Annotated[str, Field(max_length=1000), as_sent(1000)] | None = None
    occurred_at: AwareDatetime
    customer: Customer = Field(default_factory=Customer)
    rating: Rating | None = None
    touchpoint: (
        Annotated[str, Field(max_length=64, pattern=TOUCHPOINT), as_sent(64, TOUCHPOINT)] | None
    ) = None
    journey_stage: JourneyStage | None = None
    language: Annotated[str, Field(max_length=16), as_sent(16)] | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Feedback(FeedbackIn):
    """Canonical feedback as it travels on Kafka: the submitted item plus its identity."""

    id: uuid.UUID
    received_at: AwareDatetime


def feedback_id(channel: Channel, external_id: str) -> uuid.UUID:
    """Deterministic id: a provider's retry of the same webhook maps to the same item."""
    return uuid.uuid5(FEEDBACK_ID_NAMESPACE, f"{channel.value}:{external_id}")


def identify(item: FeedbackIn, received_at: datetime) -> Feedback:
    return Feedback(
        **item.model_dump(), id=feedback_id(item.channel, item.external_id), received_at=received_at
    )


class FeedbackBatchIn(ContractModel):
    items: Annotated[list[FeedbackIn], Field(min_length=1, max_length=1000)]


class FeedbackAccepted(ContractModel):
    id: uuid.UUID


class FeedbackBatchAccepted(ContractModel):
    ids: list[uuid.UUID]
