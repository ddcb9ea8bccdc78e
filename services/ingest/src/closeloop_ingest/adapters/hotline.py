"""Post-call transcripts from contact centres, in the Amazon Connect Contact Lens file shape.

Contact Lens writes one analysis file per contact::

    {"CustomerMetadata": {"ContactId", "InstanceId", ...},
     "Participants": [{"ParticipantId", "ParticipantRole"}],
     "Transcript": [{"Id", "ParticipantId", "Content", "BeginOffsetMillis",
                     "EndOffsetMillis", "Sentiment"?}],
     "Channel"?, "AccountId"?, "LanguageCode"?, ...}

The endpoint is authenticated by API key at the gateway; there is no signature.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from closeloop_ingest.adapters.base import (
    Normalised,
    NormalisedBuilder,
    ProviderModel,
    build_feedback,
    clip,
    fit_text,
    parse_json_model,
)
from closeloop_shared.contracts.feedback import Channel, JourneyStage


class ContactLensCustomerMetadata(ProviderModel):
    ContactId: str = Field(min_length=1, max_length=256)
    InstanceId: str | None = None


class ContactLensParticipant(ProviderModel):
    ParticipantId: str
    ParticipantRole: str | None = None


class ContactLensSegment(ProviderModel):
    Id: str | None = None
    ParticipantId: str
    Content: str = ""
    BeginOffsetMillis: int | None = None
    EndOffsetMillis: int | None = None
    Sentiment: str | None = None


class ContactLensAnalysis(ProviderModel):
    CustomerMetadata: ContactLensCustomerMetadata
    Participants: list[ContactLensParticipant] = Field(default_factory=list)
    Transcript: list[ContactLensSegment] = Field(default_factory=list)
    # Aliased: a field named ``Channel`` would shadow the contract's Channel enum here.
    contact_channel: str | None = Field(default=None, alias="Channel")
    AccountId: str | None = None
    LanguageCode: str | None = None


def contact_lens_to_feedback(raw: bytes, received_at: datetime) -> Normalised:
    """One hotline item per contact: the whole conversation, every turn labelled by role.

    ``text`` is the turns as ``ROLE: content`` lines (what a person reads in an
    alert); ``attributes["transcript"]`` keeps the turns structured so the
    sentiment service can score the customer's turns alone. The analysis file
    has no wall-clock time for the contact, so the time we received it stands in.
    """
    analysis = parse_json_model(ContactLensAnalysis, raw)
    result = NormalisedBuilder()
    roles = {
        p.ParticipantId: (p.ParticipantRole or p.ParticipantId).strip().lower()
        for p in analysis.Participants
    }

    turns: list[dict[str, Any]] = []
    for segment in analysis.Transcript:
        content = " ".join(segment.Content.split())
        if not content:
            continue
        turn: dict[str, Any] = {
            # Lower case: a provider-neutral vocabulary (customer, agent, system, ...).
            "role": roles.get(segment.ParticipantId, segment.ParticipantId.strip().lower()),
            "text": content,
            "begin_ms": segment.BeginOffsetMillis,
            "end_ms": segment.EndOffsetMillis,
        }
        if segment.Sentiment:
            turn["provider_sentiment"] = segment.Sentiment.strip().lower()
        turns.append(turn)
    if not turns:
        result.ignore("no_text")
        return result.build()

    text, truncated = fit_text("\n".join(f"{t['role'].upper()}: {t['text']}" for t in turns))
    metadata = analysis.CustomerMetadata
    attributes: dict[str, Any] = {
        "transcript": turns,
        **{
            key: value
            for key, value in {
                "contact_id": metadata.ContactId,
                "instance_id": clip(metadata.InstanceId),
                "contact_channel": clip(analysis.contact_channel),
                "account_id": clip(analysis.AccountId),
            }.items()
            if value is not None
        },
    }
    if truncated:
        attributes["text_truncated"] = True
    result.add(
        build_feedback(
            channel=Channel.HOTLINE,
            external_id=metadata.ContactId,
            text=text,
            occurred_at=received_at,
            touchpoint="call_center",
            journey_stage=JourneyStage.SUPPORT,
            language=clip(analysis.LanguageCode, 16),
            attributes=attributes,
        )
    )
    return result.build()
