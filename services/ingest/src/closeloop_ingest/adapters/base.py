"""What every adapter shares: the result type and the helpers that build canonical items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from closeloop_ingest.errors import InvalidPayload, MalformedBody, error_list, is_malformed_json
from closeloop_shared.contracts.feedback import MAX_TEXT_CHARS, FeedbackIn

# Limits of the canonical contract; provider data longer than these is clipped
# rather than refused, because a provider would otherwise retry a payload that
# can never succeed.
CUSTOMER_FIELD_CHARS = 512
SUBJECT_CHARS = 1000


@dataclass(frozen=True)
class Normalised:
    """An adapter's output: the items to publish and what it skipped, counted by reason."""

    items: list[FeedbackIn] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)


class NormalisedBuilder:
    def __init__(self) -> None:
        self.items: list[FeedbackIn] = []
        self.ignored: Counter[str] = Counter()

    def add(self, item: FeedbackIn) -> None:
        self.items.append(item)

    def ignore(self, reason: str) -> None:
        self.ignored[reason] += 1

    def build(self) -> Normalised:
        return Normalised(items=list(self.items), ignored=dict(self.ignored))


class ProviderModel(BaseModel):
    """Base of provider payload models: providers add fields without notice, so extras are ignored.

    Field names follow each provider's documentation verbatim (``MessageID``,
    ``ParticipantRole``) so the models can be checked against the docs line by line.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json_model(model: type[ModelT], raw: bytes) -> ModelT:
    """Parse ``raw`` JSON into ``model``: 400 if it is not JSON at all, 422 if fields are wrong."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        if is_malformed_json(error):
            raise MalformedBody("The body is not valid UTF-8 JSON.") from None
        raise InvalidPayload(
            "The payload does not match the provider's format.", errors=error_list(error)
        ) from None


def build_feedback(*, at: Sequence[str | int] = (), **fields: Any) -> FeedbackIn:
    """Construct a canonical item; a contract violation is the sender's fault (422), never a 500.

    ``at`` locates the item in the provider payload (``["reviews", 3]``) for the error list.
    """
    try:
        return FeedbackIn.model_validate(fields)
    except ValidationError as error:
        raise InvalidPayload(
            "The payload cannot be mapped to canonical feedback.",
            errors=error_list(error, prefix=at),
        ) from None


def clip(value: str | None, limit: int = CUSTOMER_FIELD_CHARS) -> str | None:
    """Trimmed ``value`` cut to ``limit`` characters; None for missing or blank values."""
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None


def fit_text(text: str) -> tuple[str, bool]:
    """Cut text to the contract's maximum at a line break if possible; says whether it was cut."""
    text = text.strip()
    if len(text) <= MAX_TEXT_CHARS:
        return text, False
    cut = text[:MAX_TEXT_CHARS]
    line_break = cut.rfind("\n")
    # Only back up to a line break if that keeps most of the text.
    if line_break > MAX_TEXT_CHARS // 2:
        cut = cut[:line_break]
    return cut.rstrip(), True


def from_unix_seconds(value: float | str | None) -> datetime | None:
    """A UTC datetime from Unix seconds (numbers or digit strings, as Google's JSON sends int64)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso8601(value: str | None) -> datetime | None:
    """An aware datetime from ISO 8601; values without an offset are taken as UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def from_rfc2822(value: str | None) -> datetime | None:
    """An aware datetime from an email ``Date`` header; ``-0000`` (no zone known) is UTC."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
